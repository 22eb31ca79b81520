//! [`EntryCache`]: loading, applying changes, and the read API.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use sigil_store::{AgentFilter, EntryFilter, PageRequest};
use sigil_types::{AttestedAgent, EntryId, RegistrationEntry, Selector, SpiffeId, TrustDomain};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::follow::FollowState;
use crate::index::{Index, Upsert};
use crate::revision::{self, ChangeLog, Changes, Revision};
use crate::{CacheSource, Error, Result};

/// Tuning of an [`EntryCache`]. The defaults suit a server with a million entries.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Entries and agents per page while loading.
    pub page_size: u32,
    /// Events read per `list_events` call while following.
    pub event_batch: u32,
    /// How long a missing event ID is waited for (PostgreSQL commits IDs out of order).
    pub gap_timeout: Duration,
    /// A missing event ID is also read again on at least this many polls before it is given up.
    pub gap_polls: u32,
    /// At most this many missing event IDs are tracked; beyond that the oldest are given up.
    pub max_gaps: usize,
    /// At load, event IDs missing among this many below the newest are tracked as gaps
    /// (transactions that took an ID before the load and had not committed yet).
    pub startup_gap_window: u32,
    /// At most this many changes that can remove entries from an agent are logged for deltas.
    pub change_log_limit: usize,
    /// Logged changes older than this are dropped; a delta from before them is a full answer.
    pub change_log_retention: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            page_size: 10_000,
            event_batch: 10_000,
            gap_timeout: Duration::from_secs(5),
            gap_polls: 3,
            max_gaps: 100_000,
            startup_gap_window: 1_000,
            change_log_limit: 100_000,
            change_log_retention: Duration::from_secs(600),
        }
    }
}

/// An attested agent as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAgent {
    /// The agent's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Its attested selectors, sorted and deduplicated.
    pub selectors: Vec<Selector>,
    /// Whether it is banned.
    pub banned: bool,
    /// Serial number (decimal) of its current SVID, as the datastore had it when the cache
    /// last saw the agent change.
    pub cert_serial_number: String,
    /// The revision at which the cache last saw these fields change.
    pub revision: Revision,
}

/// The in-memory authorized-entry cache; see the [crate docs](crate). Share it as
/// `Arc<EntryCache>`: reads take a shared lock and never wait for the datastore.
pub struct EntryCache {
    state: RwLock<State>,
    epoch: u64,
    pub(crate) follow: tokio::sync::Mutex<FollowState>,
    revision_tx: watch::Sender<Revision>,
    poke: Notify,
    pub(crate) config: CacheConfig,
}

/// Everything behind the cache's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) index: Index,
    pub(crate) log: ChangeLog,
    pub(crate) seq: u64,
}

impl State {
    /// Applies fetched objects; returns how many cached objects changed. Each change takes
    /// the next seq; changes that can remove entries from an agent are logged.
    pub(crate) fn apply(
        &mut self,
        entries: Vec<(EntryId, Option<RegistrationEntry>)>,
        agents: Vec<(SpiffeId, Option<AttestedAgent>)>,
    ) -> usize {
        let Self { index, log, seq } = self;
        let start = *seq;
        for (id, entry) in entries {
            let next = *seq + 1;
            match entry {
                Some(entry) => match index.upsert_entry(entry, next) {
                    Upsert::Unchanged => {}
                    Upsert::Created => *seq = next,
                    Upsert::Updated { old, new } => {
                        *seq = next;
                        if index.is_membership_change(&old, &new) {
                            log.push(next, old);
                        }
                    }
                },
                None => {
                    if let Some(old) = index.remove_entry(id.as_str()) {
                        *seq = next;
                        log.push(next, old);
                    }
                }
            }
        }
        for (spiffe_id, agent) in agents {
            let next = *seq + 1;
            let changed = match agent {
                Some(agent) => index.upsert_agent(agent, next),
                None => index.remove_agent(&spiffe_id),
            };
            if changed {
                *seq = next;
            }
        }
        log.prune(Instant::now());
        usize::try_from(*seq - start).unwrap_or(usize::MAX)
    }
}

/// The seq of a freshly loaded cache: every loaded object carries it.
pub(crate) const LOAD_SEQ: u64 = 1;

// === impl EntryCache ===

impl EntryCache {
    /// Loads every entry and agent of `source` for the trust domain's server
    /// (`spiffe://<td>/spire/server` parents the node aliases), and positions the follower at
    /// the newest event. Follow it with [`run_follower`](crate::run_follower) or
    /// [`sync_once`](Self::sync_once).
    pub async fn load<S: CacheSource + ?Sized>(
        source: &S,
        trust_domain: &TrustDomain,
        config: CacheConfig,
    ) -> Result<Arc<Self>> {
        let started = Instant::now();
        let server_id = server_id(trust_domain);
        // Read the event position first: whatever changes during the load has a later event
        // and is applied again by the follower.
        let cursor = source.latest_event_id().await?;
        let window = i64::from(config.startup_gap_window);
        let low = cursor.saturating_sub(window).max(0);
        let recent = source
            .list_events(low, config.startup_gap_window.max(1))
            .await?;
        let mut gaps = BTreeMap::new();
        let mut expected = low + 1;
        for event in recent.iter().filter(|e| e.id <= cursor) {
            for id in expected..event.id {
                gaps.insert(id, crate::follow::Gap::new(started));
            }
            expected = event.id + 1;
        }

        let mut index = Index::new(server_id);
        // A hint only: entries created from here on just make the index grow.
        let estimate = source.count_entries(&EntryFilter::default()).await?;
        index.reserve_entries(usize::try_from(estimate).unwrap_or(0));
        // Index one page while the store reads the next: on SQLite the read runs on the
        // blocking pool, so the two overlap even though both futures share this task.
        let (pages_tx, mut pages_rx) = mpsc::channel::<Vec<RegistrationEntry>>(2);
        let page_size = config.page_size.max(1);
        let read = async move {
            let mut page = PageRequest::first(page_size);
            loop {
                let listed = source.scan_entries(&page).await?;
                if pages_tx.send(listed.items).await.is_err() {
                    break;
                }
                match listed.next_token {
                    Some(token) => page.token = Some(token),
                    None => break,
                }
            }
            Ok::<_, Error>(())
        };
        let build = async {
            while let Some(items) = pages_rx.recv().await {
                for entry in items {
                    index.insert_loaded(entry, LOAD_SEQ);
                }
            }
        };
        let (read, ()) = tokio::join!(read, build);
        read?;
        let mut page = PageRequest::first(config.page_size.max(1));
        loop {
            let listed = source
                .list_agents(&AgentFilter::default(), Some(&page))
                .await?;
            for agent in listed.items {
                index.upsert_agent(agent, LOAD_SEQ);
            }
            match listed.next_token {
                Some(token) => page.token = Some(token),
                None => break,
            }
        }
        index.shrink_to_fit();
        tracing::info!(
            entries = index.entry_count(),
            agents = index.agent_count(),
            event_id = cursor,
            gaps = gaps.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "entry cache loaded"
        );

        let epoch = random_epoch();
        let revision = Revision {
            epoch,
            seq: LOAD_SEQ,
        };
        let log = ChangeLog::new(
            LOAD_SEQ,
            config.change_log_limit,
            config.change_log_retention,
        );
        Ok(Arc::new(Self {
            state: RwLock::new(State {
                index,
                log,
                seq: LOAD_SEQ,
            }),
            epoch,
            follow: tokio::sync::Mutex::new(FollowState::new(cursor, gaps)),
            revision_tx: watch::Sender::new(revision),
            poke: Notify::new(),
            config,
        }))
    }

    /// The SPIFFE ID that parents node-alias entries: `spiffe://<td>/spire/server`.
    pub fn server_id(&self) -> SpiffeId {
        self.read().index.server_id().clone()
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.current(&self.read())
    }

    /// A receiver of the revision, updated after every sync that changed something.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.revision_tx.subscribe()
    }

    /// Asks the follower to sync now instead of at its next poll; the server calls this when
    /// a PostgreSQL `NOTIFY` arrives. Pokes made while a sync runs cause one more sync.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    pub(crate) fn poked(&self) -> tokio::sync::futures::Notified<'_> {
        self.poke.notified()
    }

    /// Every entry the agent may serve (see the [crate docs](crate)); empty for an unknown or
    /// banned agent. In no particular order.
    pub fn authorized_entries(&self, agent_id: &SpiffeId) -> Vec<Arc<RegistrationEntry>> {
        self.read().index.authorized(agent_id)
    }

    /// An entry with SPIFFE ID `spiffe_id` that the agent may serve, if there is one: the
    /// check for an agent's CSR. Stops at the first match.
    pub fn authorized_entry(
        &self,
        agent_id: &SpiffeId,
        spiffe_id: &SpiffeId,
    ) -> Option<Arc<RegistrationEntry>> {
        self.read().index.authorized_entry(agent_id, spiffe_id)
    }

    /// What changed for the agent since `since`: a delta with upserted entries and deleted
    /// entry IDs, or the full set when a delta cannot be given. See [`Changes`].
    pub fn changes_since(&self, agent_id: &SpiffeId, since: Revision) -> Changes {
        let state = self.read();
        revision::changes_since(
            &state.index,
            &state.log,
            self.current(&state),
            agent_id,
            since,
        )
    }

    /// The cached entry with this ID.
    pub fn entry(&self, id: &EntryId) -> Option<Arc<RegistrationEntry>> {
        self.read()
            .index
            .entry(id.as_str())
            .map(|slot| Arc::clone(&slot.entry))
    }

    /// The cached agent with this SPIFFE ID.
    pub fn agent(&self, spiffe_id: &SpiffeId) -> Option<CachedAgent> {
        let state = self.read();
        state.index.agent(spiffe_id).map(|slot| CachedAgent {
            spiffe_id: spiffe_id.clone(),
            selectors: slot.selectors.clone(),
            banned: slot.banned,
            cert_serial_number: slot.cert_serial_number.to_string(),
            revision: Revision {
                epoch: self.epoch,
                seq: slot.revision,
            },
        })
    }

    /// How many entries are cached.
    pub fn entry_count(&self) -> usize {
        self.read().index.entry_count()
    }

    /// How many agents are cached.
    pub fn agent_count(&self) -> usize {
        self.read().index.agent_count()
    }

    /// Applies the current state of fetched objects (`None`: it no longer exists); returns
    /// how many cached objects changed and the revision after them.
    pub(crate) fn apply(
        &self,
        entries: Vec<(EntryId, Option<RegistrationEntry>)>,
        agents: Vec<(SpiffeId, Option<AttestedAgent>)>,
    ) -> (usize, Revision) {
        let mut state = self.write();
        let changes = state.apply(entries, agents);
        let revision = self.current(&state);
        drop(state);
        if changes > 0 {
            self.revision_tx.send_replace(revision);
        }
        (changes, revision)
    }

    /// How many changes the delta log holds (for metrics and tests).
    pub fn change_log_len(&self) -> usize {
        self.read().log.len()
    }

    fn current(&self, state: &State) -> Revision {
        Revision {
            epoch: self.epoch,
            seq: state.seq,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Writers never panic between steps that would leave the index inconsistent.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for EntryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("EntryCache")
            .field("server_id", state.index.server_id())
            .field("entries", &state.index.entry_count())
            .field("agents", &state.index.agent_count())
            .field("revision", &self.current(&state))
            .finish_non_exhaustive()
    }
}

/// `spiffe://<td>/spire/server`.
pub(crate) fn server_id(trust_domain: &TrustDomain) -> SpiffeId {
    // A fixed, valid path under a valid trust domain: the fallback is unreachable.
    SpiffeId::new(trust_domain, "/spire/server").unwrap_or_else(|_| trust_domain.id())
}

/// A random 64-bit epoch: std's per-process random hash keys mixed with the clock.
fn random_epoch() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}
