//! Following the datastore's change-event log: [`EntryCache::sync_once`] and
//! [`run_follower`].
//!
//! Gap handling. The follower keeps a cursor (the highest event ID read) and a set of gaps:
//! IDs below the cursor that were not there when the cursor passed them. On PostgreSQL a
//! transaction holding a lower ID can commit after one holding a higher ID, so each sync
//! first reads the log again from the lowest gap and applies any gap ID that has appeared.
//! A gap is given up (the transaction is taken to have rolled back) once it has been missing
//! for `gap_timeout` and at least `gap_polls` syncs. Events are not applied as deltas: each
//! names an object whose current state is fetched and stored, so order and repetition do not
//! matter.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sigil_store::{Event, EventId, EventKind};
use sigil_types::{EntryId, SpiffeId};
use tokio::time::{Instant, MissedTickBehavior};

use crate::{CacheSource, EntryCache, Result, Revision};

/// What one [`EntryCache::sync_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Events read and applied (new ones and gaps that appeared).
    pub events: usize,
    /// Cached objects that changed.
    pub changes: usize,
    /// Event IDs still missing and waited for.
    pub gaps: usize,
    /// The cache's revision after the sync.
    pub revision: Revision,
}

/// Polls the event log every `poll_interval` (and whenever [`EntryCache::poke`] is called)
/// until `shutdown` completes. A failed sync is logged and retried at the next poll.
pub async fn run_follower<S: CacheSource + ?Sized>(
    cache: Arc<EntryCache>,
    source: Arc<S>,
    poll_interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(poll_interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {}
            () = cache.poked() => {}
        }
        match cache.sync_once(&*source).await {
            Ok(report) if report.changes > 0 => tracing::debug!(
                events = report.events,
                changes = report.changes,
                gaps = report.gaps,
                revision = report.revision.seq,
                "entry cache synced"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "entry cache sync failed"),
        }
    }
}

/// A missing event ID being waited for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gap {
    since: Instant,
    polls: u32,
}

impl Gap {
    pub(crate) fn new(since: Instant) -> Self {
        Self { since, polls: 0 }
    }
}

/// The follower's position in the event log.
#[derive(Debug)]
pub(crate) struct FollowState {
    cursor: EventId,
    gaps: BTreeMap<EventId, Gap>,
}

impl FollowState {
    pub(crate) fn new(cursor: EventId, gaps: BTreeMap<EventId, Gap>) -> Self {
        Self { cursor, gaps }
    }
}

/// The objects named by a batch of events, each once.
#[derive(Debug, Default)]
struct Named {
    entries: BTreeSet<String>,
    agents: BTreeSet<String>,
}

impl Named {
    fn add(&mut self, event: &Event) {
        match event.kind {
            EventKind::Entry => self.entries.insert(event.object_id.clone()),
            EventKind::Agent => self.agents.insert(event.object_id.clone()),
        };
    }
}

// === impl EntryCache ===

impl EntryCache {
    /// Reads the events after the follower's position (and the gaps it waits for), fetches
    /// the objects they name, and applies them, one batch of events at a time. Concurrent calls
    /// run one after the other. On error the batch that failed is not applied and the position
    /// stays before it, so the next call retries it.
    pub async fn sync_once<S: CacheSource + ?Sized>(&self, source: &S) -> Result<SyncReport> {
        let mut follow = self.follow.lock().await;
        let batch = self.config.event_batch.max(1);
        let full = usize::try_from(batch).unwrap_or(usize::MAX);
        let max_gaps = i64::try_from(self.config.max_gaps).unwrap_or(i64::MAX);
        let mut events = 0;
        let mut changes = 0;

        // Gaps that have committed since the last sync.
        if let Some(&lowest) = follow.gaps.keys().next() {
            let mut gaps = follow.gaps.clone();
            let mut named = Named::default();
            let mut after = lowest - 1;
            while after < follow.cursor {
                let page = source.list_events(after, batch).await?;
                for event in page.iter().filter(|e| e.id <= follow.cursor) {
                    if gaps.remove(&event.id).is_some() {
                        named.add(event);
                        events += 1;
                    }
                }
                match page.last() {
                    Some(last) if page.len() == full => after = last.id,
                    _ => break,
                }
            }
            changes += self.fetch_and_apply(source, named).await?;
            follow.gaps = gaps;
        }

        // New events, one batch at a time; skipped IDs become gaps.
        let now = Instant::now();
        loop {
            let page = source.list_events(follow.cursor, batch).await?;
            let mut cursor = follow.cursor;
            let mut gaps = Vec::new();
            let mut named = Named::default();
            for event in &page {
                let skipped = (event.id - cursor - 1).clamp(0, max_gaps);
                gaps.extend((event.id - skipped)..event.id);
                cursor = cursor.max(event.id);
                named.add(event);
            }
            events += page.len();
            changes += self.fetch_and_apply(source, named).await?;
            follow.cursor = cursor;
            follow
                .gaps
                .extend(gaps.into_iter().map(|id| (id, Gap::new(now))));
            if page.len() < full {
                break;
            }
        }

        // Give up gaps that waited long enough, and keep the set bounded.
        let timeout = self.config.gap_timeout;
        let polls = self.config.gap_polls;
        follow.gaps.retain(|id, gap| {
            gap.polls += 1;
            let keep = now.saturating_duration_since(gap.since) < timeout || gap.polls < polls;
            if !keep {
                tracing::debug!(event_id = id, "event gap given up");
            }
            keep
        });
        while follow.gaps.len() > self.config.max_gaps {
            follow.gaps.pop_first();
        }
        Ok(SyncReport {
            events,
            changes,
            gaps: follow.gaps.len(),
            revision: self.revision(),
        })
    }

    /// Fetches the named objects and applies them; returns how many cached objects changed.
    async fn fetch_and_apply<S: CacheSource + ?Sized>(
        &self,
        source: &S,
        named: Named,
    ) -> Result<usize> {
        if named.entries.is_empty() && named.agents.is_empty() {
            return Ok(0);
        }
        let (entries, agents) = fetch(source, named).await?;
        Ok(self.apply(entries, agents).0)
    }
}

type Fetched = (
    Vec<(EntryId, Option<sigil_types::RegistrationEntry>)>,
    Vec<(SpiffeId, Option<sigil_types::AttestedAgent>)>,
);

/// The current state of every named object. Object IDs that do not parse are logged and
/// skipped: the store wrote them, so they cannot name a cached object.
async fn fetch<S: CacheSource + ?Sized>(source: &S, named: Named) -> Result<Fetched> {
    let mut entries = Vec::with_capacity(named.entries.len());
    for object_id in named.entries {
        match EntryId::new(&object_id) {
            Ok(id) => {
                let entry = source.fetch_entry(&id).await?;
                entries.push((id, entry));
            }
            Err(error) => tracing::warn!(%object_id, %error, "event names an invalid entry ID"),
        }
    }
    let mut agents = Vec::with_capacity(named.agents.len());
    for object_id in named.agents {
        match object_id.parse::<SpiffeId>() {
            Ok(id) => {
                let agent = source.fetch_agent(&id).await?;
                agents.push((id, agent));
            }
            Err(error) => tracing::warn!(%object_id, %error, "event names an invalid agent ID"),
        }
    }
    Ok((entries, agents))
}
