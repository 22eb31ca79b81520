//! The bound on the agent's X509-SVIDs (`x509_svid_cache_max_size`), after SPIRE's LRU cache
//! (`pkg/agent/manager/cache/lru_cache.go`):
//!
//! - Entries with an open subscription (a Workload API or SDS stream, a Delegated Identity
//!   stream, a JWT call that checks the caller has an identity) always get their SVIDs,
//!   whatever the limit: the limit is a soft one.
//! - The other SVIDs the agent holds are kept, most recently used first, while the total stays
//!   within the limit; with room left, SVIDs are minted ahead for entries no one asked for
//!   yet (in entry-ID order). The rest are dropped (and their keys with them).
//! - "Used" is when a subscription opened for selectors that match the entry.
//! - A subscription whose entries lack SVIDs wakes the sync loop, which mints them at once
//!   (SPIRE polls every 500 ms instead); the subscription waits for that round, at most the
//!   first-sync wait, and then serves what there is.
//!
//! Where sigil differs from SPIRE: SPIRE evicts only SVIDs unused for longer than a cache
//! expiry period and keeps a record per entry to find subscribers by selector; sigil ranks
//! by last use alone and matches subscriptions against entries on each planning round.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sigil_types::{RegistrationEntry, Selector};
use tokio::sync::Notify;

use crate::cache::{CachedSvid, Snapshot};
use crate::error::AgentError;
use crate::sync::{BATCH, Syncer};
use crate::workload::matching;

/// Who needs which X509-SVIDs; shared by the workload sockets and the sync loop.
#[derive(Debug)]
pub(crate) struct X509Demand {
    max_size: usize,
    state: Mutex<DemandState>,
    /// Set when a subscription lacks SVIDs; the sync loop mints for it.
    wake: Notify,
}

#[derive(Debug, Default)]
struct DemandState {
    /// Selector sets of the open subscriptions, with how many are open.
    subscribers: HashMap<BTreeSet<Selector>, usize>,
    /// The last use of each entry (by entry ID), as a counter value.
    last_use: HashMap<String, u64>,
    clock: u64,
    /// Planning rounds started.
    rounds: u64,
}

/// An open subscription: its entries keep their SVIDs until it is dropped.
#[derive(Debug)]
pub(crate) struct Subscription {
    demand: Arc<X509Demand>,
    selectors: BTreeSet<Selector>,
    round: u64,
}

/// The SVIDs one planning round settled on.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) svids: HashMap<String, Arc<CachedSvid>>,
    /// The round's number when it minted for a subscription, else `None`.
    pub(crate) round: Option<u64>,
}

impl X509Demand {
    /// Demand with a limit of `max_size` SVIDs (at least one).
    pub(crate) fn new(max_size: usize) -> Arc<Self> {
        Arc::new(X509Demand {
            max_size: max_size.max(1),
            state: Mutex::new(DemandState::default()),
            wake: Notify::new(),
        })
    }

    /// Opens a subscription for `selectors`: their entries in `snapshot` count as used now,
    /// and when one of them has no SVID the sync loop is woken to mint it.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        selectors: &BTreeSet<Selector>,
        snapshot: &Snapshot,
    ) -> Subscription {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state.subscribers.entry(selectors.clone()).or_default() += 1;
        state.clock += 1;
        let used = state.clock;
        for entry in matching(snapshot, selectors) {
            state.last_use.insert(entry.id.as_str().to_owned(), used);
        }
        let round = state.rounds;
        drop(state);
        if !served(snapshot, selectors) {
            self.wake.notify_one();
        }
        Subscription {
            demand: self.clone(),
            selectors: selectors.clone(),
            round,
        }
    }

    /// Starts a planning round over `entries`: the entries with a subscription, the last
    /// use of every entry, and the round's number.
    fn start_round(
        &self,
        entries: &[Arc<RegistrationEntry>],
    ) -> (HashSet<String>, HashMap<String, u64>, u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.rounds += 1;
        let present: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        state.last_use.retain(|id, _| present.contains(id.as_str()));
        let active = entries
            .iter()
            .filter(|entry| {
                !entry.selectors.is_empty()
                    && state
                        .subscribers
                        .keys()
                        .any(|set| entry.selectors.iter().all(|s| set.contains(s)))
            })
            .map(|entry| entry.id.as_str().to_owned())
            .collect();
        (active, state.last_use.clone(), state.rounds)
    }
}

impl Subscription {
    /// Whether the agent has settled this subscription's SVIDs in `snapshot`: every entry it
    /// matches has one, or a round that saw the subscription has been published.
    pub(crate) fn settled(&self, snapshot: &Snapshot) -> bool {
        snapshot.x509_round > self.round || served(snapshot, &self.selectors)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self
            .demand
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = state.subscribers.get_mut(&self.selectors) {
            *count -= 1;
            if *count == 0 {
                state.subscribers.remove(&self.selectors);
            }
        }
    }
}

/// Every entry `selectors` match has an SVID in `snapshot`.
fn served(snapshot: &Snapshot, selectors: &BTreeSet<Selector>) -> bool {
    matching(snapshot, selectors).all(|e| snapshot.svids.contains_key(e.id.as_str()))
}

/// The entries that get an SVID: every one in `active`, then those holding one (most
/// recently used first), then the others in `entries`' order, up to `max_size` in all.
fn select<'a>(
    entries: &'a [Arc<RegistrationEntry>],
    held: &HashMap<String, Arc<CachedSvid>>,
    active: &HashSet<String>,
    last_use: &HashMap<String, u64>,
    max_size: usize,
) -> Vec<&'a Arc<RegistrationEntry>> {
    let is_active = |e: &&Arc<RegistrationEntry>| active.contains(e.id.as_str());
    let mut chosen: Vec<&Arc<RegistrationEntry>> = entries.iter().filter(is_active).collect();
    let mut holding: Vec<&Arc<RegistrationEntry>> = entries
        .iter()
        .filter(|e| !is_active(e) && held.contains_key(e.id.as_str()))
        .collect();
    holding.sort_by_key(|e| std::cmp::Reverse(last_use.get(e.id.as_str()).copied()));
    let ahead = entries
        .iter()
        .filter(|e| !is_active(e) && !held.contains_key(e.id.as_str()));
    let room = max_size.saturating_sub(chosen.len());
    chosen.extend(holding.into_iter().chain(ahead).take(room));
    chosen
}

// === impl Syncer ===

impl Syncer {
    /// The SVIDs for `entries` within the limit: kept while valid, minted when missing or
    /// due, dropped beyond the limit.
    pub(crate) async fn svids(
        &self,
        entries: &[Arc<RegistrationEntry>],
        current: &Snapshot,
    ) -> Result<Planned, AgentError> {
        let (active, last_use, round) = self.demand.start_round(entries);
        let chosen = select(
            entries,
            &current.svids,
            &active,
            &last_use,
            self.demand.max_size,
        );
        let now = self.clock.now();
        let mut kept = HashMap::new();
        let mut due = Vec::new();
        for entry in chosen {
            match current.svids.get(entry.id.as_str()) {
                Some(svid) if svid.revision == entry.revision_number && now < svid.renew_at => {
                    kept.insert(entry.id.as_str().to_owned(), svid.clone());
                }
                old => due.push((entry, old.cloned())),
            }
        }
        let for_subscribers = due.iter().any(|(e, _)| active.contains(e.id.as_str()));
        self.mint_due(&due, &mut kept, now).await?;
        tracing::debug!(
            entries = entries.len(),
            svids = kept.len(),
            subscribed = active.len(),
            minted = due.len(),
            "X509-SVIDs held"
        );
        Ok(Planned {
            svids: kept,
            round: for_subscribers.then_some(round),
        })
    }

    /// Mints `due` (each with the SVID it replaces) into `kept`, in batches; a refused one
    /// keeps its still valid old SVID, if any.
    async fn mint_due(
        &self,
        due: &[(&Arc<RegistrationEntry>, Option<Arc<CachedSvid>>)],
        kept: &mut HashMap<String, Arc<CachedSvid>>,
        now: i64,
    ) -> Result<(), AgentError> {
        for chunk in due.chunks(BATCH) {
            // A failed call fails the round, and the published snapshot stays as it was.
            let minted = self.mint(chunk.iter().map(|(e, _)| e.as_ref())).await?;
            for ((entry, old), new) in chunk.iter().zip(minted) {
                let id = entry.id.as_str().to_owned();
                match (new, old) {
                    (Some(svid), _) => {
                        kept.insert(id, Arc::new(svid));
                    }
                    (None, Some(old)) if old.svid.expires_at > now => {
                        kept.insert(id, old.clone());
                    }
                    (None, _) => {}
                }
            }
        }
        Ok(())
    }

    /// Waits `wait`, minting for new subscriptions meanwhile; `true` when `shutdown` came.
    pub(crate) async fn idle(
        &mut self,
        wait: Duration,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let demand = self.demand.clone();
        loop {
            tokio::select! {
                () = &mut *shutdown => return true,
                () = tokio::time::sleep_until(deadline) => return false,
                () = demand.wake.notified() => {
                    if let Err(error) = self.mint_for_subscribers().await {
                        tracing::debug!(error = %error, "minting X509-SVIDs for a new subscriber failed");
                    }
                }
            }
        }
    }

    /// A planning round over the entries the agent holds, published at once.
    async fn mint_for_subscribers(&mut self) -> Result<(), AgentError> {
        let current = self.publish.borrow().clone();
        let entries: Vec<Arc<RegistrationEntry>> = current.entries.values().cloned().collect();
        let planned = self.svids(&entries, &current).await?;
        self.publish.send_if_modified(|old| {
            let round = planned.round.unwrap_or(old.x509_round);
            if old.svids == planned.svids && old.x509_round == round {
                return false;
            }
            let mut next = Snapshot::clone(old);
            next.svids = planned.svids;
            next.x509_round = round;
            *old = Arc::new(next);
            true
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
