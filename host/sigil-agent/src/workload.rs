//! Workload attestation and what each workload may have: the agent's implementation of
//! [`sigil_workload::WorkloadIdentities`].
//!
//! A caller's PID (from `SO_PEERCRED`) is attested by every configured workload attestor on
//! a blocking thread. PID reuse: the process's start time (`/proc/<pid>/stat`, field 22) is
//! read before the attestors run and again after them; a change refuses the caller (and
//! [`sigil_plugins::ProcessFacts`] makes the same check around its own reads).
//!
//! A workload gets the entries whose selectors are all among its own, the SVIDs the sync
//! holds for them, the own bundle and the bundles of the trust domains those entries
//! federate with.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sigil_plugins::{ProcRoots, ProcessFacts, WorkloadAttestor};
use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_types::{JwtSvid, RegistrationEntry, Selector, SpiffeId};
use sigil_workload::{Caller, IdentityError, WorkloadIdentities, WorkloadSvid, WorkloadUpdate};
use tokio::sync::watch;

use crate::client::ServerClient;
use crate::sync::{Snapshot, now};

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
    jwt_cache: Mutex<HashMap<(String, Vec<String>), JwtSvid>>,
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
    ) -> Self {
        Workloads {
            attestors,
            roots: ProcRoots::default(),
            cache,
            client,
            jwt_cache: Mutex::new(HashMap::new()),
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
        self.attest_pid(pid).await
    }

    async fn subscribe(
        &self,
        workload: &Workload,
    ) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, IdentityError> {
        // Before the first sync a restarted agent has its stored bundle but no SVIDs yet.
        let mut cache = self.snapshots().await;
        let first = cache.borrow_and_update().clone();
        let selectors = workload.selectors.clone();
        let initial = update_for(&first, &selectors)
            .ok_or_else(|| IdentityError::Unavailable("the agent has not synced yet".into()))?;
        let (send, receive) = watch::channel(Arc::new(initial));
        tokio::spawn(async move {
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
    pub(crate) async fn attest_pid(&self, pid: u32) -> Result<Workload, IdentityError> {
        let attestors = self.attestors.clone();
        let roots = self.roots.clone();
        let attested = tokio::task::spawn_blocking(move || {
            let before = start_time(&roots, pid).map_err(Failure::Refused)?;
            let facts = ProcessFacts::resolve_in(&roots, pid)
                .map_err(|e| Failure::Refused(e.to_string()))?;
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
            if start_time(&roots, pid).map_err(Failure::Refused)? != before {
                return Err(Failure::Refused(
                    "the process exited or its PID was reused".to_owned(),
                ));
            }
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

    /// The agent's snapshots, once the first sync is done (waiting at most
    /// [`FIRST_SYNC_WAIT`] for it).
    pub(crate) async fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        let mut cache = self.cache.clone();
        let _ = tokio::time::timeout(FIRST_SYNC_WAIT, cache.wait_for(|s| s.synced)).await;
        cache
    }

    /// A JWT-SVID for `entry`: from the cache until its half-life, else NewJWTSVID.
    async fn jwt_svid(
        &self,
        entry: &RegistrationEntry,
        audience: &[String],
    ) -> Result<JwtSvid, IdentityError> {
        let key = (entry.id.as_str().to_owned(), audience.to_vec());
        let now = now();
        {
            let mut cache = self
                .jwt_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            cache.retain(|_, svid| svid.expires_at > now);
            if let Some(svid) = cache.get(&key)
                && now < svid.issued_at + (svid.expires_at - svid.issued_at) / 2
            {
                return Ok(svid.clone());
            }
        }
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
        let svid = JwtSvid {
            spiffe_id: entry.spiffe_id.clone(),
            token: wire.token,
            audience: audience.to_vec(),
            expires_at: wire.expires_at,
            issued_at: wire.issued_at,
            hint: entry.hint.clone(),
        };
        self.jwt_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, svid.clone());
        Ok(svid)
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

/// Field 22 of `/proc/<pid>/stat`: the process start time in clock ticks.
fn start_time(roots: &ProcRoots, pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(roots.proc.join(pid.to_string()).join("stat"))
        .map_err(|e| format!("cannot read the process's stat: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed stat")?;
    rest.split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| "malformed stat".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process_is_stable() {
        let roots = ProcRoots::default();
        let pid = std::process::id();
        let first = start_time(&roots, pid);
        assert!(first.is_ok(), "{first:?}");
        assert_eq!(first, start_time(&roots, pid));
    }

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
