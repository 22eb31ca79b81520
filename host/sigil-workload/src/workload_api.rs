//! The SPIFFE Workload API (`/SpiffeWorkloadAPI/<method>`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sigil_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApi;
use sigil_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, WitBundlesRequest, WitBundlesResponse,
    WitsvidRequest, WitsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svid,
    X509svidRequest, X509svidResponse,
};
use sigil_types::{Bundle, SpiffeId};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::serve::{attest, subscribe};
use crate::stream::{ResponseStream, push_on_change};
use crate::{WorkloadConfig, WorkloadIdentities, WorkloadSvid, WorkloadUpdate};

/// The metadata key every Workload API call must carry with the value `true`, so a browser
/// or other SSRF-able client cannot reach the API by accident.
const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The Workload API service over a [`WorkloadIdentities`].
pub(crate) struct WorkloadApiService<I> {
    identities: Arc<I>,
    config: Arc<WorkloadConfig>,
    closing: watch::Receiver<bool>,
}

impl<I> WorkloadApiService<I> {
    pub(crate) fn new(
        identities: Arc<I>,
        config: Arc<WorkloadConfig>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            identities,
            config,
            closing,
        }
    }
}

// === impl WorkloadApiService ===

#[async_trait::async_trait]
impl<I: WorkloadIdentities> SpiffeWorkloadApi for WorkloadApiService<I> {
    type FetchX509SVIDStream = ResponseStream<X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<JwtBundlesResponse>;
    type FetchWITSVIDStream = ResponseStream<WitsvidResponse>;
    type FetchWITBundlesStream = ResponseStream<WitBundlesResponse>;

    #[tracing::instrument(skip_all)]
    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let updates = self.subscribe(&request).await?;
        Ok(Response::new(push_on_change(
            updates,
            self.closing.clone(),
            |update| x509_svid_response(update),
            || ApiError::IdentitiesGone,
            || ApiError::ShuttingDown,
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let updates = self.subscribe(&request).await?;
        let allow = self.config.allow_unauthenticated_verifiers;
        Ok(Response::new(push_on_change(
            updates,
            self.closing.clone(),
            move |update| {
                require_identity(update, allow)?;
                Ok(X509BundlesResponse {
                    crl: Vec::new(),
                    bundles: visible_bundles(update)
                        .map(|b| (b.trust_domain.id().to_string(), b.x509_authorities_der()))
                        .collect(),
                })
            },
            || ApiError::IdentitiesGone,
            || ApiError::ShuttingDown,
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        check_security_header(&request)?;
        let fields = request.get_ref();
        if fields.audience.is_empty() {
            return Err(ApiError::Missing("audience").into());
        }
        sigil_types::check_audience(&fields.audience).map_err(ApiError::from)?;
        let spiffe_id = match fields.spiffe_id.as_str() {
            "" => None,
            text => Some(
                text.parse::<SpiffeId>()
                    .map_err(|e| ApiError::invalid_spiffe_id(text, e))?,
            ),
        };
        let workload = attest(&*self.identities, &request).await?;
        let update = subscribe(&*self.identities, &workload)
            .await?
            .borrow()
            .clone();
        require_identity(&update, false)?;
        let svids = self
            .identities
            .fetch_jwt_svids(&workload, &fields.audience, spiffe_id.as_ref())
            .await
            .map_err(ApiError::from)?;
        if svids.is_empty() {
            return Err(ApiError::NoIdentityIssued.into());
        }
        let mut hints = HashSet::new();
        Ok(Response::new(JwtsvidResponse {
            svids: svids
                .into_iter()
                // As for X509-SVIDs: a repeated non-empty hint is served once.
                .filter(|svid| svid.hint.is_empty() || hints.insert(svid.hint.clone()))
                .map(|svid| Jwtsvid {
                    spiffe_id: svid.spiffe_id.to_string(),
                    svid: svid.token,
                    hint: svid.hint,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let updates = self.subscribe(&request).await?;
        let allow = self.config.allow_unauthenticated_verifiers;
        Ok(Response::new(push_on_change(
            updates,
            self.closing.clone(),
            move |update| {
                require_identity(update, allow)?;
                let mut bundles = HashMap::new();
                for bundle in visible_bundles(update) {
                    bundles.insert(bundle.trust_domain.id().to_string(), jwks(bundle)?);
                }
                Ok(JwtBundlesResponse { bundles })
            },
            || ApiError::IdentitiesGone,
            || ApiError::ShuttingDown,
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        check_security_header(&request)?;
        let fields = request.get_ref();
        if fields.audience.is_empty() {
            return Err(ApiError::Missing("audience").into());
        }
        if fields.svid.is_empty() {
            return Err(ApiError::Missing("svid").into());
        }
        let workload = attest(&*self.identities, &request).await?;
        let update = subscribe(&*self.identities, &workload)
            .await?
            .borrow()
            .clone();
        require_identity(&update, self.config.allow_unauthenticated_verifiers)?;
        let (spiffe_id, claims) = crate::jwt::validate(
            &fields.svid,
            &fields.audience,
            &update,
            sigil_clock::unix_now(),
        )?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: spiffe_id.to_string(),
            claims: Some(claims),
        }))
    }

    async fn fetch_witsvid(
        &self,
        request: Request<WitsvidRequest>,
    ) -> Result<Response<Self::FetchWITSVIDStream>, Status> {
        check_security_header(&request)?;
        Err(ApiError::WitSvidUnsupported.into())
    }

    async fn fetch_wit_bundles(
        &self,
        request: Request<WitBundlesRequest>,
    ) -> Result<Response<Self::FetchWITBundlesStream>, Status> {
        check_security_header(&request)?;
        Err(ApiError::WitSvidUnsupported.into())
    }
}

impl<I: WorkloadIdentities> WorkloadApiService<I> {
    /// Checks the header, attests the caller and subscribes to its identities.
    async fn subscribe<T>(
        &self,
        request: &Request<T>,
    ) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, ApiError> {
        check_security_header(request)?;
        let workload = attest(&*self.identities, request).await?;
        subscribe(&*self.identities, &workload).await
    }
}

fn x509_svid_response(update: &WorkloadUpdate) -> Result<X509svidResponse, ApiError> {
    require_identity(update, false)?;
    let bundle = update.bundle().x509_authorities_der();
    Ok(X509svidResponse {
        svids: unique_hints(update.svids())
            .map(|s| X509svid {
                spiffe_id: s.svid.spiffe_id.to_string(),
                x509_svid: s.svid.cert_chain.concat(),
                x509_svid_key: s.svid.private_key.secret_pkcs8_der().to_vec(),
                bundle: bundle.clone(),
                hint: s.svid.hint.clone(),
            })
            .collect(),
        crl: Vec::new(),
        federated_bundles: update
            .federated_bundles()
            .values()
            .map(|b| (b.trust_domain.id().to_string(), b.x509_authorities_der()))
            .collect(),
    })
}

/// The SVIDs without the later ones of a repeated non-empty hint: as SPIRE, a hint names one
/// SVID. SPIRE keeps the oldest entry's; here the first in entry-ID order is kept.
fn unique_hints(svids: &[WorkloadSvid]) -> impl Iterator<Item = &WorkloadSvid> {
    let mut seen = HashSet::new();
    svids.iter().filter(move |s| {
        let hint = s.svid.hint.as_str();
        let first = hint.is_empty() || seen.insert(hint);
        if !first {
            tracing::warn!(hint, entry_id = %s.entry_id, "SVID with a repeated hint not served");
        }
        first
    })
}

/// The bundles a caller sees: the own bundle, and the federated ones only when it has an
/// identity (an unauthenticated verifier federates with nothing), as SPIRE.
fn visible_bundles(update: &WorkloadUpdate) -> impl Iterator<Item = &Bundle> {
    let federated = !update.svids().is_empty();
    update
        .all_bundles()
        .filter(move |b| federated || b.trust_domain == update.bundle().trust_domain)
}

/// Refuses a caller without SVIDs, unless unauthenticated verifiers are allowed.
fn require_identity(update: &WorkloadUpdate, allow_without: bool) -> Result<(), ApiError> {
    if update.svids().is_empty() && !allow_without {
        return Err(ApiError::NoIdentityIssued);
    }
    Ok(())
}

fn check_security_header<T>(request: &Request<T>) -> Result<(), ApiError> {
    let mut values = request.metadata().get_all(SECURITY_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if value.as_bytes() == b"true" => Ok(()),
        _ => Err(ApiError::MissingSecurityHeader),
    }
}

/// The bundle's JWT authorities as a JWK set; a bundle that cannot be encoded is logged.
fn jwks(bundle: &Bundle) -> Result<Vec<u8>, ApiError> {
    bundle.to_jwt_jwks().map(String::into_bytes).map_err(|error| {
        tracing::error!(trust_domain = %bundle.trust_domain, %error, "bundle cannot be encoded as a JWK set");
        ApiError::Internal
    })
}
