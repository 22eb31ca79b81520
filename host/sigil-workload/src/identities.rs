//! What the socket serves, as the agent hands it over: the [`WorkloadIdentities`] trait and the
//! values that cross it.

use std::collections::BTreeMap;
use std::sync::Arc;

use sigil_listen::{PeerError, PeerProcess};
use sigil_types::{Bundle, EntryId, JwtSvid, SpiffeId, TrustDomain, X509Svid};
use tokio::sync::watch;

/// The caller of one connection: who connected, as the kernel saw it when the connection was
/// made (`SO_PEERCRED`), pinned to that process.
///
/// A connection outlives its connector's identity: the connector can exec a setuid program or
/// exit and leave the connection to another process. An implementation attests the caller
/// only between two successful [`Caller::verify`] calls, so what it read by PID belongs to the
/// process that connected, with the credentials it connected with.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Process ID; `None` when the platform does not report one.
    pub pid: Option<i32>,
    /// Effective user ID at connect.
    pub uid: u32,
    /// Effective group ID at connect.
    pub gid: u32,
    process: Option<Arc<PeerProcess>>,
}

impl Caller {
    /// A caller known only by its credentials, with nothing pinned: [`verify`](Self::verify)
    /// refuses it. For tests and callers that attest a PID someone else named.
    pub fn unpinned(pid: Option<i32>, uid: u32, gid: u32) -> Self {
        Caller {
            pid,
            uid,
            gid,
            process: None,
        }
    }

    /// Whether the process that connected is still there, as the process at its PID, with
    /// the credentials it connected with.
    pub fn verify(&self) -> Result<(), PeerError> {
        match &self.process {
            Some(process) => process.verify(),
            None => Err(PeerError::NoPid),
        }
    }
}

impl From<Arc<PeerProcess>> for Caller {
    fn from(process: Arc<PeerProcess>) -> Self {
        let credentials = process.credentials();
        Caller {
            pid: credentials.pid,
            uid: credentials.uid,
            gid: credentials.gid,
            process: Some(process),
        }
    }
}

/// Why a caller gets nothing from the socket. Each variant becomes one gRPC status; the
/// reason text is shown to the caller, so it must not carry secrets or internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The caller could not be attested, or may not have what it asked for
    /// (`PermissionDenied`).
    #[error("{0}")]
    Denied(String),
    /// The agent cannot answer right now, e.g. it has not synced with the server yet, or
    /// its workload attestors are saturated (`Unavailable`, with a `grpc-retry-pushback-ms`
    /// retry hint). Never used for a refusal that retrying cannot change.
    #[error("{0}")]
    Unavailable(String),
}

/// One X509-SVID of a workload, with the entry it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSvid {
    /// The registration entry the SVID was issued for; SVIDs are served in entry-ID order.
    pub entry_id: EntryId,
    /// The SVID, its key and the entry's hint.
    pub svid: X509Svid,
}

/// Everything one workload may have at one moment: its X509-SVIDs, the agent's own trust
/// bundle and the bundles of the trust domains its entries federate with.
///
/// A new value is published on every change (a rotated SVID, a new or removed entry, a bundle
/// update); every open stream pushes when one arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadUpdate {
    svids: Vec<WorkloadSvid>,
    bundle: Bundle,
    federated_bundles: BTreeMap<TrustDomain, Bundle>,
}

impl WorkloadUpdate {
    /// A snapshot. The SVIDs are put in entry-ID order (the first is the one SDS serves as
    /// `default`); a federated bundle of the own trust domain is dropped.
    pub fn new(
        mut svids: Vec<WorkloadSvid>,
        bundle: Bundle,
        federated_bundles: impl IntoIterator<Item = Bundle>,
    ) -> Self {
        svids.sort_by(|a, b| a.entry_id.as_str().cmp(b.entry_id.as_str()));
        let federated_bundles = federated_bundles
            .into_iter()
            .filter(|b| b.trust_domain != bundle.trust_domain)
            .map(|b| (b.trust_domain.clone(), b))
            .collect();
        Self {
            svids,
            bundle,
            federated_bundles,
        }
    }

    /// A snapshot with no SVIDs: a caller with no identity.
    pub fn empty(bundle: Bundle) -> Self {
        Self::new(Vec::new(), bundle, [])
    }

    /// The X509-SVIDs, in entry-ID order.
    pub fn svids(&self) -> &[WorkloadSvid] {
        &self.svids
    }

    /// The agent's own trust domain's bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Bundles of other trust domains, by trust domain.
    pub fn federated_bundles(&self) -> &BTreeMap<TrustDomain, Bundle> {
        &self.federated_bundles
    }

    /// The own bundle, then the federated ones in trust-domain order.
    pub fn all_bundles(&self) -> impl Iterator<Item = &Bundle> {
        std::iter::once(&self.bundle).chain(self.federated_bundles.values())
    }

    /// The bundle of `trust_domain`, own or federated.
    pub fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<&Bundle> {
        if *trust_domain == self.bundle.trust_domain {
            Some(&self.bundle)
        } else {
            self.federated_bundles.get(trust_domain)
        }
    }
}

/// The agent's side of the workload socket: who a caller is and what it may have.
///
/// The socket calls [`attest`](Self::attest) once per call (once per stream for the streaming
/// calls) with the connection's peer credentials; the returned workload is then used for
/// that call only. Implementations decide everything about identity: this crate never looks
/// at selectors, entries or the server.
#[async_trait::async_trait]
pub trait WorkloadIdentities: Send + Sync + 'static {
    /// Whatever the agent needs to remember of an attested caller (its selectors, say).
    type Workload: Send + Sync + 'static;

    /// Attests `caller`. A caller that attests but has no entries is not an error: it gets a
    /// workload whose updates have no SVIDs, and the socket answers "no identity issued".
    async fn attest(&self, caller: Caller) -> Result<Self::Workload, IdentityError>;

    /// The workload's identities: the receiver holds the current snapshot and sees every
    /// change; dropping it ends the subscription. An agent that has not synced the
    /// workload's entries yet may wait here, or answer [`IdentityError::Unavailable`].
    async fn subscribe(
        &self,
        workload: &Self::Workload,
    ) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, IdentityError>;

    /// Mints JWT-SVIDs for `audience` (never empty): one per SPIFFE ID of the workload, or
    /// only for `spiffe_id` when given. A `spiffe_id` the workload does not have is
    /// [`IdentityError::Denied`].
    async fn fetch_jwt_svids(
        &self,
        workload: &Self::Workload,
        audience: &[String],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, IdentityError>;
}
