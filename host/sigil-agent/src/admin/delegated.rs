//! The Delegated Identity API (`spire.api.agent.delegatedidentity.v1.DelegatedIdentity`).
//!
//! As SPIRE's agent (`pkg/agent/api/delegatedidentity/v1/service.go`):
//!
//! - Every call first attests the caller from its peer credentials and checks that one of
//!   the entries matching its selectors has a SPIFFE ID in `authorized_delegates`
//!   (PermissionDenied "no identity issued" / "caller not configured as an authorized
//!   delegate"). Streams check again on every change, so a delegate whose entry goes away
//!   loses its streams. No `workload.spiffe.io` header is asked for: SPIRE's admin socket
//!   does not ask for one. `FetchJWTSVIDs` checks the audience (present, and within sigil's
//!   limits, [`sigil_types::check_audience`]) before the caller.
//! - The target workload is given by selectors or by PID, never both; a PID is attested
//!   with the agent's workload attestors (refused when the PID was reused during
//!   attestation; the delegate must not keep a stream open past the process's life).
//! - A workload's entries are those whose selectors are all among the given selectors (the
//!   workload socket's rule, SPIRE's `MatchingRegistrationEntries`). X509-SVIDs of entries
//!   with `admin` or `downstream` are not handed to delegates; `federates_with` lists the
//!   trust domains (as `spiffe://<td>`) the entries federate with whose bundles the agent
//!   holds.
//! - Bundle streams carry every bundle the agent holds, keyed `spiffe://<td>`: X.509
//!   authorities as concatenated DER, JWT authorities as a JWK set.
//!
//! Streams send the current answer at once and again whenever it changes (an identical
//! answer is not repeated), and end when the agent shuts down.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sigil_proto::spire::api::agent::delegatedidentity::v1::delegated_identity_server::DelegatedIdentity;
use sigil_proto::spire::api::agent::delegatedidentity::v1::{
    FetchJwtsviDsRequest, FetchJwtsviDsResponse, SubscribeToJwtBundlesRequest,
    SubscribeToJwtBundlesResponse, SubscribeToX509BundlesRequest, SubscribeToX509BundlesResponse,
    SubscribeToX509sviDsRequest, SubscribeToX509sviDsResponse, X509svidWithKey,
};
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, Selector, SpiffeId};
use sigil_workload::{IdentityError, ResponseStream, WorkloadIdentities};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::error::DelegatedError;
use crate::cache::Snapshot;
use crate::workload::{Workload, Workloads, matching};

/// The service: the agent's workloads and the authorized delegates.
#[derive(Debug)]
pub(crate) struct Delegated {
    workloads: Arc<Workloads>,
    delegates: Arc<HashSet<SpiffeId>>,
    closing: watch::Receiver<bool>,
}

/// A caller found to be an authorized delegate.
struct Authorized {
    /// The caller's own selectors, checked again on every change of a stream.
    selectors: BTreeSet<Selector>,
    /// The agent's snapshots, after its first sync.
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl Delegated {
    pub(crate) fn new(
        workloads: Arc<Workloads>,
        delegates: Arc<HashSet<SpiffeId>>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Delegated {
            workloads,
            delegates,
            closing,
        }
    }
}

// === impl Delegated ===

#[async_trait::async_trait]
impl DelegatedIdentity for Delegated {
    type SubscribeToX509SVIDsStream = ResponseStream<SubscribeToX509sviDsResponse>;
    type SubscribeToX509BundlesStream = ResponseStream<SubscribeToX509BundlesResponse>;
    type SubscribeToJWTBundlesStream = ResponseStream<SubscribeToJwtBundlesResponse>;

    #[tracing::instrument(skip_all)]
    async fn subscribe_to_x509svi_ds(
        &self,
        request: Request<SubscribeToX509sviDsRequest>,
    ) -> Result<Response<Self::SubscribeToX509SVIDsStream>, Status> {
        let caller = self.authorize(&request).await?;
        let fields = request.get_ref();
        let target = self.target(&fields.selectors, fields.pid).await?;
        Ok(Response::new(self.svid_stream(caller, target)))
    }

    #[tracing::instrument(skip_all)]
    async fn subscribe_to_x509_bundles(
        &self,
        request: Request<SubscribeToX509BundlesRequest>,
    ) -> Result<Response<Self::SubscribeToX509BundlesStream>, Status> {
        let caller = self.authorize(&request).await?;
        Ok(Response::new(self.push_on_change(caller, |snapshot| {
            Ok(SubscribeToX509BundlesResponse {
                ca_certificates: bundles(snapshot)?
                    .map(|b| (b.trust_domain.id().to_string(), b.x509_authorities_der()))
                    .collect(),
            })
        })))
    }

    #[tracing::instrument(skip_all)]
    async fn fetch_jwtsvi_ds(
        &self,
        request: Request<FetchJwtsviDsRequest>,
    ) -> Result<Response<FetchJwtsviDsResponse>, Status> {
        let fields = request.get_ref();
        if fields.audience.is_empty() {
            return Err(DelegatedError::Missing("audience").into());
        }
        sigil_types::check_audience(&fields.audience).map_err(DelegatedError::from)?;
        self.authorize(&request).await?;
        let target = self.target(&fields.selectors, fields.pid).await?;
        Ok(Response::new(
            self.jwt_svids(target, &fields.audience).await?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn subscribe_to_jwt_bundles(
        &self,
        request: Request<SubscribeToJwtBundlesRequest>,
    ) -> Result<Response<Self::SubscribeToJWTBundlesStream>, Status> {
        let caller = self.authorize(&request).await?;
        Ok(Response::new(self.push_on_change(caller, |snapshot| {
            let mut bundles_by_id = HashMap::new();
            for bundle in bundles(snapshot)? {
                bundles_by_id.insert(bundle.trust_domain.id().to_string(), jwks(bundle)?);
            }
            Ok(SubscribeToJwtBundlesResponse {
                bundles: bundles_by_id,
            })
        })))
    }
}

impl Delegated {
    /// Attests the caller and checks it against `authorized_delegates`.
    async fn authorize<T>(&self, request: &Request<T>) -> Result<Authorized, DelegatedError> {
        let caller = sigil_workload::caller_of(request).ok_or(DelegatedError::NoPeerCredentials)?;
        let (pid, uid) = (caller.pid, caller.uid);
        let workload = self.workloads.attest(caller).await.map_err(|error| {
            tracing::warn!(?pid, uid, %error, "delegate attestation failed");
            DelegatedError::caller(error)
        })?;
        let snapshots = self.workloads.snapshots().await;
        let selectors = workload.selectors().clone();
        authorized(&self.delegates, &snapshots.borrow(), &selectors).inspect_err(|error| {
            tracing::warn!(?pid, uid, %error, "delegated identity call refused");
        })?;
        Ok(Authorized {
            selectors,
            snapshots,
        })
    }

    /// The target workload's selectors: the given ones, or those of the given PID.
    async fn target(
        &self,
        selectors: &[wire::Selector],
        pid: i32,
    ) -> Result<BTreeSet<Selector>, DelegatedError> {
        match (selectors.is_empty(), pid) {
            (false, 0) => selectors
                .iter()
                .map(|s| {
                    Selector::new(&s.r#type, &s.value)
                        .map_err(|e| DelegatedError::invalid_selector(&s.r#type, &s.value, e))
                })
                .collect(),
            (true, pid) if pid != 0 => self.target_pid(pid).await,
            _ => Err(DelegatedError::SelectorsOrPid),
        }
    }

    /// The selectors of the process `pid`, attested now.
    async fn target_pid(&self, pid: i32) -> Result<BTreeSet<Selector>, DelegatedError> {
        let pid = u32::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(DelegatedError::InvalidPid(pid))?;
        match self.workloads.attest_pid(pid).await {
            Ok(workload) => Ok(workload.selectors().clone()),
            Err(IdentityError::Unavailable(reason)) => Err(DelegatedError::Unavailable(reason)),
            Err(error) => {
                tracing::warn!(pid, %error, "attesting a delegate's target PID failed");
                Err(DelegatedError::PidAttestation)
            }
        }
    }

    /// The stream of the X509-SVIDs of the workload with `target` selectors.
    fn svid_stream(
        &self,
        caller: Authorized,
        target: BTreeSet<Selector>,
    ) -> ResponseStream<SubscribeToX509sviDsResponse> {
        // The target's entries keep (and get) their SVIDs while the stream is open.
        let subscription = self
            .workloads
            .x509_subscription(&target, &caller.snapshots.borrow());
        self.push_on_change(caller, move |snapshot| {
            let _open = &subscription;
            Ok(x509_svids(snapshot, &target))
        })
    }

    /// JWT-SVIDs for `audience`, one per SPIFFE ID of the workload with `target` selectors,
    /// through the agent's JWT-SVID cache.
    async fn jwt_svids(
        &self,
        target: BTreeSet<Selector>,
        audience: &[String],
    ) -> Result<FetchJwtsviDsResponse, DelegatedError> {
        let workload = Workload::from_selectors(target);
        let svids = self
            .workloads
            .fetch_jwt_svids(&workload, audience, None)
            .await
            .map_err(|error| match error {
                IdentityError::Unavailable(reason) => DelegatedError::Unavailable(reason),
                _ => DelegatedError::NoIdentityIssued,
            })?;
        if svids.is_empty() {
            return Err(DelegatedError::NoIdentityIssued);
        }
        Ok(FetchJwtsviDsResponse {
            svids: svids
                .into_iter()
                .map(|svid| wire::Jwtsvid {
                    id: Some((&svid.spiffe_id).into()),
                    token: svid.token,
                    expires_at: svid.expires_at,
                    issued_at: svid.issued_at,
                    hint: svid.hint,
                })
                .collect(),
        })
    }

    /// A stream that answers from the current snapshot, then again after every change that
    /// changes the answer, while the caller stays an authorized delegate; it ends when the
    /// caller goes away, serving stops, or `respond` refuses.
    fn push_on_change<T, F>(&self, caller: Authorized, respond: F) -> ResponseStream<T>
    where
        T: PartialEq + Clone + Send + 'static,
        F: Fn(&Snapshot) -> Result<T, DelegatedError> + Send + 'static,
    {
        let Authorized {
            selectors,
            snapshots,
        } = caller;
        let delegates = self.delegates.clone();
        sigil_workload::push_on_change(
            snapshots,
            self.closing.clone(),
            move |snapshot: &Arc<Snapshot>| {
                authorized(&delegates, snapshot, &selectors).and_then(|()| respond(snapshot))
            },
            || DelegatedError::ShuttingDown,
            || DelegatedError::ShuttingDown,
        )
    }
}

/// Whether the workload with `selectors` is an authorized delegate in `snapshot`.
fn authorized(
    delegates: &HashSet<SpiffeId>,
    snapshot: &Snapshot,
    selectors: &BTreeSet<Selector>,
) -> Result<(), DelegatedError> {
    let mut entries = matching(snapshot, selectors).peekable();
    if entries.peek().is_none() {
        return Err(DelegatedError::NoIdentityIssued);
    }
    if entries.any(|e| delegates.contains(&e.spiffe_id)) {
        Ok(())
    } else {
        Err(DelegatedError::NotAuthorized)
    }
}

/// The X509-SVIDs (with keys) the agent holds for the entries `selectors` match.
fn x509_svids(snapshot: &Snapshot, selectors: &BTreeSet<Selector>) -> SubscribeToX509sviDsResponse {
    let mut x509_svids = Vec::new();
    let mut federates_with = BTreeSet::new();
    for entry in matching(snapshot, selectors) {
        let Some(cached) = snapshot.svids.get(entry.id.as_str()) else {
            continue;
        };
        federates_with.extend(
            entry
                .federates_with
                .iter()
                .filter(|td| snapshot.federated.contains_key(*td))
                .map(|td| td.id().to_string()),
        );
        if entry.admin || entry.downstream {
            continue;
        }
        let svid = &cached.svid;
        x509_svids.push(X509svidWithKey {
            x509_svid: Some(wire::X509svid {
                cert_chain: svid.cert_chain.clone(),
                id: Some((&svid.spiffe_id).into()),
                expires_at: svid.expires_at,
                hint: svid.hint.clone(),
            }),
            x509_svid_key: svid.private_key.secret_pkcs8_der().to_vec(),
        });
    }
    SubscribeToX509sviDsResponse {
        x509_svids,
        federates_with: federates_with.into_iter().collect(),
    }
}

/// Every bundle the agent holds: its own, then the federated ones.
fn bundles(snapshot: &Snapshot) -> Result<impl Iterator<Item = &Bundle>, DelegatedError> {
    let own = snapshot
        .bundle
        .as_ref()
        .ok_or_else(|| DelegatedError::Unavailable("the agent has not synced yet".into()))?;
    Ok(std::iter::once(own).chain(
        snapshot
            .federated
            .values()
            .filter(move |b| b.trust_domain != own.trust_domain),
    ))
}

/// The bundle's JWT authorities as a JWK set; a bundle that cannot be encoded is logged.
fn jwks(bundle: &Bundle) -> Result<Vec<u8>, DelegatedError> {
    bundle.to_jwt_jwks().map(String::into_bytes).map_err(|error| {
        tracing::error!(trust_domain = %bundle.trust_domain, %error, "bundle cannot be encoded as a JWK set");
        DelegatedError::Internal
    })
}

#[cfg(test)]
mod tests;
