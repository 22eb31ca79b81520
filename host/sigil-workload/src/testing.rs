//! An in-memory [`WorkloadIdentities`] for tests: every caller is the same workload, whose
//! identities the test sets and changes at will (to simulate rotation).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sigil_ca::JwtSigner;
use sigil_types::{JwtSvid, SpiffeId};
use tokio::sync::watch;

use crate::{Caller, IdentityError, WorkloadIdentities, WorkloadUpdate};

/// Lifetime of the JWT-SVIDs [`StaticIdentities`] mints.
const JWT_TTL: Duration = Duration::from_secs(300);

/// Identities held in memory and handed to every caller alike.
pub struct StaticIdentities {
    updates: watch::Sender<Arc<WorkloadUpdate>>,
    jwt_signer: Option<JwtSigner>,
    refusal: Option<IdentityError>,
    callers: Mutex<Vec<Caller>>,
}

impl std::fmt::Debug for StaticIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticIdentities")
            .field("current", &self.updates.borrow().svids().len())
            .field("jwt_signer", &self.jwt_signer)
            .field("refusal", &self.refusal)
            .finish_non_exhaustive()
    }
}

impl StaticIdentities {
    /// Every caller gets `update`.
    pub fn new(update: WorkloadUpdate) -> Self {
        Self {
            updates: watch::Sender::new(Arc::new(update)),
            jwt_signer: None,
            refusal: None,
            callers: Mutex::new(Vec::new()),
        }
    }

    /// JWT-SVIDs are minted with `signer` (whose authority the test puts in a bundle).
    pub fn with_jwt_signer(mut self, signer: JwtSigner) -> Self {
        self.jwt_signer = Some(signer);
        self
    }

    /// Every attestation fails with `error`.
    pub fn refusing(mut self, error: IdentityError) -> Self {
        self.refusal = Some(error);
        self
    }

    /// Replaces the identities; every open stream sees the change.
    pub fn set(&self, update: WorkloadUpdate) {
        self.updates.send_replace(Arc::new(update));
    }

    /// The identities as they are now.
    pub fn current(&self) -> Arc<WorkloadUpdate> {
        self.updates.borrow().clone()
    }

    /// Every caller attested so far, in order.
    pub fn callers(&self) -> Vec<Caller> {
        self.callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl WorkloadIdentities for StaticIdentities {
    type Workload = Caller;

    async fn attest(&self, caller: Caller) -> Result<Caller, IdentityError> {
        self.callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(caller.clone());
        match &self.refusal {
            Some(error) => Err(error.clone()),
            None => Ok(caller),
        }
    }

    async fn subscribe(
        &self,
        _workload: &Caller,
    ) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, IdentityError> {
        Ok(self.updates.subscribe())
    }

    async fn fetch_jwt_svids(
        &self,
        _workload: &Caller,
        audience: &[String],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, IdentityError> {
        let signer = self
            .jwt_signer
            .as_ref()
            .ok_or_else(|| IdentityError::Unavailable("no JWT signer configured".into()))?;
        let now = sigil_clock::unix_now();
        let update = self.current();
        let mut minted: Vec<JwtSvid> = Vec::new();
        for svid in update.svids() {
            let id = &svid.svid.spiffe_id;
            if spiffe_id.is_some_and(|wanted| wanted != id)
                || minted.iter().any(|m| m.spiffe_id == *id)
            {
                continue;
            }
            let mut jwt = signer
                .mint_jwt_svid(id, audience, JWT_TTL, now)
                .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
            jwt.hint = svid.svid.hint.clone();
            minted.push(jwt);
        }
        if minted.is_empty() && spiffe_id.is_some() {
            return Err(IdentityError::Denied("no identity issued".into()));
        }
        Ok(minted)
    }
}
