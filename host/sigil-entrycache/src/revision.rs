//! Revisions, the log of changes that can take entries away from an agent, and
//! [`changes_since`]: the delta of one agent's authorized entries between two revisions.
//!
//! An agent's set can grow without the added entries changing (a new entry becomes the
//! parent of existing ones), and shrink without the removed ones changing (their ancestor
//! moved). So the delta is computed from structure, not from entry revisions alone:
//!
//! - *upserted*: every authorized entry that changed after the asked revision, or that the
//!   walk reached through a changed entry or alias: whatever was reachable before only
//!   through unchanged entries is still known to the agent;
//! - *deleted*: every entry that was reachable before and is not now. Starting from the
//!   parent IDs the agent reaches now, each logged change whose old parent was reachable marks
//!   the old entry as lost (unless it is still authorized) and its old SPIFFE ID as a parent
//!   that was reachable; the entries still parented to such lost parent IDs are lost too,
//!   recursively. A logged change of a node alias whose old selectors the agent matched marks
//!   the alias's old SPIFFE ID likewise.
//!
//! A change to the agent itself (new selectors, banned), a revision of another epoch, or one
//! older than the log keeps, gets a full answer instead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use sigil_types::{EntryId, RegistrationEntry, SpiffeId};
use tokio::time::Instant;

use crate::authz::is_subset;
use crate::index::Index;

/// A point in the cache's history. `seq` increases by one with every change the cache
/// applies; `epoch` is random per cache instance, so revisions from another server or an
/// earlier process are recognized as foreign (they get a full answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Revision {
    /// The cache instance that issued the revision.
    pub epoch: u64,
    /// The change counter.
    pub seq: u64,
}

/// What [`EntryCache::changes_since`](crate::EntryCache::changes_since) answers.
#[derive(Debug, Clone)]
pub enum Changes {
    /// The agent's authorized entries changed by this much since the asked revision. Both
    /// lists are empty when nothing changed for the agent.
    Delta {
        /// The revision the answer is current at; ask from it next time.
        revision: Revision,
        /// Entries the agent may serve that are new or changed since the asked revision.
        upserted: Vec<Arc<RegistrationEntry>>,
        /// IDs of entries the agent may no longer serve (deleted, or no longer authorized).
        deleted: Vec<EntryId>,
    },
    /// A delta cannot be given (foreign or too old revision, or the agent itself changed):
    /// here is the full set. An unknown or banned agent gets a full, empty set.
    Full {
        /// The revision the answer is current at.
        revision: Revision,
        /// Every entry the agent may serve.
        entries: Vec<Arc<RegistrationEntry>>,
    },
}

impl Changes {
    /// The revision the answer is current at.
    pub fn revision(&self) -> Revision {
        match self {
            Self::Delta { revision, .. } | Self::Full { revision, .. } => *revision,
        }
    }
}

/// A change that can take entries away from an agent: the entry as it was before.
#[derive(Debug)]
pub(crate) struct ChangeRecord {
    revision: u64,
    at: Instant,
    old: Arc<RegistrationEntry>,
}

/// The bounded log of [`ChangeRecord`]s. `horizon` is the newest revision whose record may
/// have been dropped: deltas can be given from revisions at or after it.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    records: VecDeque<ChangeRecord>,
    horizon: u64,
    limit: usize,
    retention: Duration,
}

impl ChangeLog {
    pub(crate) fn new(horizon: u64, limit: usize, retention: Duration) -> Self {
        Self {
            records: VecDeque::new(),
            horizon,
            limit,
            retention,
        }
    }

    pub(crate) fn horizon(&self) -> u64 {
        self.horizon
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Logs `old`, changed at `revision` (increasing from call to call).
    pub(crate) fn push(&mut self, revision: u64, old: Arc<RegistrationEntry>) {
        self.records.push_back(ChangeRecord {
            revision,
            at: Instant::now(),
            old,
        });
        self.prune(Instant::now());
    }

    /// Drops records beyond the limit or older than the retention.
    pub(crate) fn prune(&mut self, now: Instant) {
        while let Some(first) = self.records.front() {
            let expired = now.saturating_duration_since(first.at) > self.retention;
            if self.records.len() <= self.limit && !expired {
                break;
            }
            self.horizon = self.horizon.max(first.revision);
            self.records.pop_front();
        }
    }

    /// The records after revision `seq`, oldest first.
    fn since(&self, seq: u64) -> impl Iterator<Item = &ChangeRecord> {
        let start = self.records.partition_point(|r| r.revision <= seq);
        self.records.range(start..)
    }
}

/// The delta of `agent_id`'s authorized entries since `since`; see the module docs.
pub(crate) fn changes_since(
    index: &Index,
    log: &ChangeLog,
    current: Revision,
    agent_id: &SpiffeId,
    since: Revision,
) -> Changes {
    let full = || Changes::Full {
        revision: current,
        entries: index.authorized(agent_id),
    };
    if since.epoch != current.epoch || since.seq < log.horizon() || since.seq > current.seq {
        return full();
    }
    let Some(agent) = index.agent(agent_id) else {
        return full();
    };
    if agent.banned || agent.revision > since.seq {
        return full();
    }

    let moved = |e: &RegistrationEntry| {
        index
            .entry(e.id.as_str())
            .is_some_and(|slot| slot.linked > since.seq)
    };
    let mut now_ids: HashSet<&EntryId> = HashSet::new();
    let mut upserted = Vec::new();
    let reachable = index.walk(agent_id, agent, moved, |entry, via_moved| {
        now_ids.insert(&entry.id);
        let changed = via_moved
            || index
                .entry(entry.id.as_str())
                .is_some_and(|slot| slot.revision > since.seq);
        if changed {
            upserted.push(Arc::clone(entry));
        }
        ControlFlow::Continue(())
    });

    // Lost parent IDs to expand, and the logged old entries by their old parent.
    let mut queue: Vec<&str> = Vec::new();
    let mut by_old_parent: HashMap<&str, Vec<&RegistrationEntry>> = HashMap::new();
    for record in log.since(since.seq) {
        let old = &*record.old;
        if index.is_alias(old) {
            if is_subset(&old.selectors, &agent.selectors) {
                queue.push(old.spiffe_id.as_str());
            }
        } else {
            by_old_parent
                .entry(old.parent_id.as_str())
                .or_default()
                .push(old);
        }
    }
    let mut deleted: HashSet<&EntryId> = HashSet::new();
    for parent in &reachable {
        for old in by_old_parent.get(parent).into_iter().flatten() {
            deleted.insert(&old.id);
            queue.push(old.spiffe_id.as_str());
        }
    }
    let mut expanded: HashSet<&str> = HashSet::new();
    while let Some(parent) = queue.pop() {
        if reachable.contains(parent) || !expanded.insert(parent) {
            continue;
        }
        for child in index.children(parent) {
            deleted.insert(&child.id);
            queue.push(child.spiffe_id.as_str());
        }
        for old in by_old_parent.get(parent).into_iter().flatten() {
            deleted.insert(&old.id);
            queue.push(old.spiffe_id.as_str());
        }
    }
    let mut deleted: Vec<EntryId> = deleted
        .into_iter()
        .filter(|id| !now_ids.contains(id))
        .cloned()
        .collect();
    deleted.sort();

    Changes::Delta {
        revision: current,
        upserted,
        deleted,
    }
}
