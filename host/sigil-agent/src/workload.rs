//! Workload attestation and what each workload may have: the agent's implementation of
//! [`sigil_workload::WorkloadIdentities`].
//!
//! A caller's PID (from `SO_PEERCRED`) is attested by every configured workload attestor on
//! a blocking thread, and only while it is provably the process that connected: the caller
//! pinned at accept ([`sigil_workload::Caller::verify`]: pidfd, start time, credentials) is
//! checked before the facts are read and after the attestors ran, and the uid and gid the
//! attestors see must be the ones the kernel recorded at connect. A connector that exec'd a
//! setuid program, or exited so that its PID could be reused, is refused on its kept
//! connection. PID reuse inside the attestation window: [`sigil_plugins::ProcessFacts`] reads
//! the process's start time around its own reads, and again after the attestors ran.
//!
//! A workload gets the entries whose selectors are all among its own, the SVIDs the sync
//! holds for them, the own bundle and the bundles of the trust domains those entries
//! federate with. A subscription keeps its entries' X509-SVIDs and has missing ones minted
//! (`x509_cache`); JWT-SVIDs come from a bounded cache (`jwt_cache`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sigil_plugins::{ProcRoots, ProcessFacts, WorkloadAttestor};
use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_types::{Clock, JwtSvid, RegistrationEntry, Selector, SpiffeId};
use sigil_workload::{Caller, IdentityError, WorkloadIdentities, WorkloadSvid, WorkloadUpdate};
use tokio::sync::watch;

use crate::cache::Snapshot;
use crate::client::ServerClient;
use crate::jwt_cache::{self, Cached, JwtSvidCache};
use crate::x509_cache::{Subscription, X509Demand};

/// How long `subscribe` (and the admin socket) waits for the agent's first sync; after that it serves what the
/// agent has (a stored bundle, say) or answers Unavailable.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(5);

/// The agent's side of the workload socket.
#[derive(Debug)]
pub struct Workloads {
    attestors: Vec<WorkloadAttestor>,
    roots: ProcRoots,
    cache: watch::Receiver<Arc<Snapshot>>,
    client: ServerClient,
    jwt_cache: JwtSvidCache,
    demand: Arc<X509Demand>,
    /// When cached JWT-SVIDs are judged (the agent's injected clock).
    clock: Arc<dyn Clock>,
}

/// An attested caller: its selectors.
#[derive(Debug, Clone)]
pub struct Workload {
    selectors: BTreeSet<Selector>,
}

impl Workload {
    /// The caller's selectors, from every workload attestor.
    pub fn selectors(&self) -> &BTreeSet<Selector> {
        &self.selectors
    }

    /// A workload described by selectors someone else attested (a delegate, on the admin
    /// socket).
    pub(crate) fn from_selectors(selectors: BTreeSet<Selector>) -> Self {
        Workload { selectors }
    }
}

impl Workloads {
    pub(crate) fn new(
        attestors: Vec<WorkloadAttestor>,
        cache: watch::Receiver<Arc<Snapshot>>,
        client: ServerClient,
        demand: Arc<X509Demand>,
        jwt_svid_cache_max_size: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Workloads {
            attestors,
            roots: ProcRoots::default(),
            cache,
            client,
            jwt_cache: JwtSvidCache::new(jwt_svid_cache_max_size),
            demand,
            clock,
        }
    }
}

#[async_trait::async_trait]
impl WorkloadIdentities for Workloads {
    type Workload = Workload;

    async fn attest(&self, caller: Caller) -> Result<Workload, IdentityError> {
        let pid = caller
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| IdentityError::Denied("the caller's PID is unknown".into()))?;
        self.attest_process(pid, Some(caller)).await
    }

    async fn subscribe(
        &self,
        workload: &Workload,
    ) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, IdentityError> {
        // Before the first sync a restarted agent has its stored bundle but no SVIDs yet.
        let mut cache = self.snapshots().await;
        let subscription = self.x509_subscription(&workload.selectors, &cache.borrow());
        // SVIDs beyond the cache limit are minted now; the first answer waits for them.
        let _ = tokio::time::timeout(FIRST_SYNC_WAIT, cache.wait_for(|s| subscription.settled(s)))
            .await;
        let first = cache.borrow_and_update().clone();
        let selectors = workload.selectors.clone();
        let initial = update_for(&first, &selectors)
            .ok_or_else(|| IdentityError::Unavailable("the agent has not synced yet".into()))?;
        let (send, receive) = watch::channel(Arc::new(initial));
        tokio::spawn(async move {
            // The entries keep their SVIDs while the subscription is open.
            let _subscription = subscription;
            loop {
                tokio::select! {
                    () = send.closed() => return,
                    changed = cache.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let snapshot = cache.borrow_and_update().clone();
                        if let Some(update) = update_for(&snapshot, &selectors) {
                            send.send_if_modified(|old| {
                                if **old == update {
                                    false
                                } else {
                                    *old = Arc::new(update);
                                    true
                                }
                            });
                        }
                    }
                }
            }
        });
        Ok(receive)
    }

    async fn fetch_jwt_svids(
        &self,
        workload: &Workload,
        audience: &[String],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, IdentityError> {
        let snapshot = self.cache.borrow().clone();
        let entries: Vec<Arc<RegistrationEntry>> = matching(&snapshot, &workload.selectors)
            .filter(|e| spiffe_id.is_none_or(|id| e.spiffe_id == *id))
            .cloned()
            .collect();
        if let Some(id) = spiffe_id
            && entries.is_empty()
        {
            return Err(IdentityError::Denied(format!(
                "the workload has no identity {id}"
            )));
        }
        let mut audience = audience.to_vec();
        audience.sort();
        audience.dedup();
        let mut svids = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in entries {
            // One JWT-SVID per SPIFFE ID: the first entry (by ID) of each.
            if !seen.insert(entry.spiffe_id.clone()) {
                continue;
            }
            svids.push(self.jwt_svid(&entry, &audience).await?);
        }
        Ok(svids)
    }
}

impl Workloads {
    /// Attests the process `pid` with every workload attestor, refusing it when the PID was
    /// reused meanwhile (its start time changed).
    /// Attests the process `pid` that a delegate named (there is no connection to pin it to).
    pub(crate) async fn attest_pid(&self, pid: u32) -> Result<Workload, IdentityError> {
        self.attest_process(pid, None).await
    }

    /// Attests `pid`; when it is the connector of a connection, `caller` pins it (see the
    /// module's comment).
    async fn attest_process(
        &self,
        pid: u32,
        caller: Option<Caller>,
    ) -> Result<Workload, IdentityError> {
        let attestors = self.attestors.clone();
        let roots = self.roots.clone();
        let attested = tokio::task::spawn_blocking(move || {
            let verify = || {
                caller.as_ref().map_or(Ok(()), |c| {
                    c.verify().map_err(|e| Failure::Refused(e.to_string()))
                })
            };
            verify()?;
            let facts = ProcessFacts::resolve_in(&roots, pid)
                .map_err(|e| Failure::Refused(e.to_string()))?;
            if let Some(caller) = &caller
                && (facts.uid() != caller.uid || facts.gid() != caller.gid)
            {
                return Err(Failure::Refused(format!(
                    "the process runs as uid {}/gid {}, not the uid {}/gid {} it connected with",
                    facts.uid(),
                    facts.gid(),
                    caller.uid,
                    caller.gid
                )));
            }
            let mut selectors = BTreeSet::new();
            for attestor in &attestors {
                let found = attestor.attest_process(facts.clone()).map_err(|e| {
                    let reason = format!("{}: {e}", attestor.name());
                    if e.is_saturated() {
                        Failure::Saturated(reason)
                    } else {
                        Failure::Refused(reason)
                    }
                })?;
                selectors.extend(found);
            }
            facts
                .ensure_same_process()
                .map_err(|e| Failure::Refused(e.to_string()))?;
            verify()?;
            Ok(selectors)
        })
        .await
        .map_err(|e| IdentityError::Unavailable(format!("attestation thread: {e}")))?;
        match attested {
            Ok(selectors) => {
                tracing::debug!(pid, count = selectors.len(), "workload attested");
                Ok(Workload { selectors })
            }
            // Not the caller's fault and not final: the plugin host reports saturation in
            // the log itself, at most every few seconds.
            Err(Failure::Saturated(reason)) => {
                tracing::debug!(pid, %reason, "workload attestation saturated");
                Err(IdentityError::Unavailable(
                    "workload attestation is busy; retry later".into(),
                ))
            }
            Err(Failure::Refused(reason)) => {
                tracing::warn!(pid, %reason, "workload attestation failed");
                Err(IdentityError::Denied("workload attestation failed".into()))
            }
        }
    }

    /// Opens an X509-SVID subscription for `selectors` (see `x509_cache`).
    pub(crate) fn x509_subscription(
        &self,
        selectors: &BTreeSet<Selector>,
        snapshot: &Snapshot,
    ) -> Subscription {
        self.demand.subscribe(selectors, snapshot)
    }

    /// The agent's snapshots, once the first sync is done (waiting at most
    /// [`FIRST_SYNC_WAIT`] for it).
    pub(crate) async fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        let mut cache = self.cache.clone();
        let _ = tokio::time::timeout(FIRST_SYNC_WAIT, cache.wait_for(|s| s.synced)).await;
        cache
    }

    /// A JWT-SVID for `entry`: from the cache while it has enough life left (see
    /// `jwt_cache`), else from NewJWTSVID; when that fails, a cached one that has not expired.
    async fn jwt_svid(
        &self,
        entry: &RegistrationEntry,
        audience: &[String],
    ) -> Result<JwtSvid, IdentityError> {
        let key = jwt_cache::key(&entry.spiffe_id, audience);
        let fallback = match self.jwt_cache.lookup(&key, self.clock.now()) {
            Cached::Fresh(svid) => return Ok(svid),
            Cached::Renewable(svid) => Some(svid),
            Cached::Missing => None,
        };
        let minted = match self.new_jwt_svid(entry, audience).await {
            Ok(minted) => minted,
            Err(error) => {
                return match fallback.filter(|old| old.expires_at > self.clock.now()) {
                    Some(old) => {
                        tracing::warn!(spiffe_id = %entry.spiffe_id, "cannot renew a JWT-SVID; serving the cached one");
                        Ok(old)
                    }
                    None => Err(error),
                };
            }
        };
        self.jwt_cache.store(key, minted.clone(), self.clock.now());
        Ok(minted)
    }

    /// A new JWT-SVID for `entry` from the server.
    async fn new_jwt_svid(
        &self,
        entry: &RegistrationEntry,
        audience: &[String],
    ) -> Result<JwtSvid, IdentityError> {
        let response = svid_api::svid_client::SvidClient::new(self.client.channel())
            .new_jwtsvid(svid_api::NewJwtsvidRequest {
                entry_id: entry.id.as_str().to_owned(),
                audience: audience.to_vec(),
            })
            .await
            .map_err(|status| {
                tracing::warn!(spiffe_id = %entry.spiffe_id, error = %status, "NewJWTSVID failed");
                IdentityError::Unavailable("cannot mint a JWT-SVID now".into())
            })?
            .into_inner();
        let wire = response
            .svid
            .ok_or_else(|| IdentityError::Unavailable("the server sent no JWT-SVID".into()))?;
        Ok(JwtSvid {
            spiffe_id: entry.spiffe_id.clone(),
            token: wire.token,
            audience: audience.to_vec(),
            expires_at: wire.expires_at,
            issued_at: wire.issued_at,
            hint: entry.hint.clone(),
        })
    }
}

/// Why attesting a PID failed.
enum Failure {
    /// A workload attestor had no capacity: the same call may succeed shortly.
    Saturated(String),
    /// The process could not be attested.
    Refused(String),
}

/// Entries (in entry-ID order) whose selectors are all among `selectors`.
pub(crate) fn matching<'a>(
    snapshot: &'a Snapshot,
    selectors: &'a BTreeSet<Selector>,
) -> impl Iterator<Item = &'a Arc<RegistrationEntry>> {
    snapshot
        .entries
        .values()
        .filter(|e| !e.selectors.is_empty() && e.selectors.iter().all(|s| selectors.contains(s)))
}

/// The workload's view of `snapshot`; `None` without a bundle.
fn update_for(snapshot: &Snapshot, selectors: &BTreeSet<Selector>) -> Option<WorkloadUpdate> {
    let bundle = snapshot.bundle.clone()?;
    let mut svids = Vec::new();
    let mut federated = BTreeSet::new();
    for entry in matching(snapshot, selectors) {
        if let Some(cached) = snapshot.svids.get(entry.id.as_str()) {
            svids.push(WorkloadSvid {
                entry_id: entry.id.clone(),
                svid: cached.svid.clone(),
            });
            federated.extend(entry.federates_with.iter().cloned());
        }
    }
    let bundles = federated
        .iter()
        .filter_map(|td| snapshot.federated.get(td).cloned())
        .collect::<Vec<_>>();
    Some(WorkloadUpdate::new(svids, bundle, bundles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_only_with_all_their_selectors() {
        let td: sigil_types::TrustDomain = "example.org".parse().expect("td");
        let agent = SpiffeId::new(&td, "/spire/agent/x").expect("id");
        let sel = |v: &str| Selector::new("unix", v).expect("selector");
        let mut snapshot = Snapshot::default();
        for (path, selectors) in [
            ("/a", vec![sel("uid:1")]),
            ("/b", vec![sel("uid:1"), sel("gid:2")]),
        ] {
            let entry = RegistrationEntry::new(
                SpiffeId::new(&td, path).expect("id"),
                agent.clone(),
                selectors,
            );
            snapshot
                .entries
                .insert(entry.id.as_str().to_owned(), Arc::new(entry));
        }
        let workload: BTreeSet<Selector> = [sel("uid:1"), sel("gid:3")].into();
        let found: Vec<&str> = matching(&snapshot, &workload)
            .map(|e| e.spiffe_id.path())
            .collect();
        assert_eq!(found, ["/a"]);
    }
}
