//! The index: entries by ID, entries by parent ID, node-alias entries by selector, agents by
//! SPIFFE ID.
//!
//! Memory layout. An entry is stored once, as an `Arc<RegistrationEntry>`; every index holds
//! only pointers to it. The by-ID index is a `HashSet` of [`Slot`]s (the pointer and the
//! revision) hashed by the entry's own ID through `Borrow<str>`, so the ID string is not copied
//! into a key. The by-parent index is keyed by one `Arc<str>` per distinct parent ID, shared by
//! all of that parent's children. Node aliases are few; their index copies their selectors.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sigil_types::{AttestedAgent, RegistrationEntry, Selector, SpiffeId};

/// One cached entry, the cache revision at which it last changed, and the revision at which
/// it last changed in a way that moves its subtree (created, new parent or SPIFFE ID, new
/// selectors on a node alias).
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) entry: Arc<RegistrationEntry>,
    pub(crate) revision: u64,
    pub(crate) linked: u64,
}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entry.id.as_str().hash(state);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.entry.id == other.entry.id
    }
}

impl Eq for Slot {}

impl Borrow<str> for Slot {
    fn borrow(&self) -> &str {
        self.entry.id.as_str()
    }
}

/// What the cache keeps of an attested agent: what authorization needs.
#[derive(Debug, Clone)]
pub(crate) struct AgentSlot {
    /// Sorted and deduplicated.
    pub(crate) selectors: Vec<Selector>,
    pub(crate) banned: bool,
    /// Serial number (decimal) of the agent's current SVID, for the server's per-call check
    /// of the caller's certificate. Not part of the revision: it changes what the agent may
    /// present, not what it may serve.
    pub(crate) cert_serial_number: Box<str>,
    /// The cache revision at which the selectors or the ban flag last changed.
    pub(crate) revision: u64,
}

/// The outcome of [`Index::upsert_entry`].
#[derive(Debug)]
pub(crate) enum Upsert {
    /// The cached entry was already equal.
    Unchanged,
    /// The entry was not cached.
    Created,
    /// The cached entry was replaced.
    Updated {
        old: Arc<RegistrationEntry>,
        new: Arc<RegistrationEntry>,
    },
}

#[derive(Debug)]
pub(crate) struct Index {
    /// `spiffe://<td>/spire/server`: entries parented to it are node aliases.
    server_id: SpiffeId,
    entries: HashSet<Slot>,
    children: HashMap<Arc<str>, Vec<Arc<RegistrationEntry>>>,
    aliases: HashMap<Selector, Vec<Arc<RegistrationEntry>>>,
    agents: HashMap<SpiffeId, AgentSlot>,
}

// === impl Index ===

impl Index {
    pub(crate) fn new(server_id: SpiffeId) -> Self {
        Self {
            server_id,
            entries: HashSet::new(),
            children: HashMap::new(),
            aliases: HashMap::new(),
            agents: HashMap::new(),
        }
    }

    pub(crate) fn server_id(&self) -> &SpiffeId {
        &self.server_id
    }

    /// Whether the entry is a node alias: parented to the server.
    pub(crate) fn is_alias(&self, entry: &RegistrationEntry) -> bool {
        entry.parent_id == self.server_id
    }

    pub(crate) fn entry(&self, id: &str) -> Option<&Slot> {
        self.entries.get(id)
    }

    /// The entries whose parent ID is `parent_id`, in no particular order.
    pub(crate) fn children(&self, parent_id: &str) -> &[Arc<RegistrationEntry>] {
        self.children.get(parent_id).map_or(&[], Vec::as_slice)
    }

    /// The node-alias entries that carry `selector`.
    pub(crate) fn aliases_with(&self, selector: &Selector) -> &[Arc<RegistrationEntry>] {
        self.aliases.get(selector).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn agent(&self, spiffe_id: &SpiffeId) -> Option<&AgentSlot> {
        self.agents.get(spiffe_id)
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Makes room for `additional` more entries, so a bulk load does not rehash the by-ID
    /// index as it grows (each rehash reads every entry's ID through its pointer).
    pub(crate) fn reserve_entries(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// Releases spare capacity after a bulk load.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.children.shrink_to_fit();
        for children in self.children.values_mut() {
            children.shrink_to_fit();
        }
        self.agents.shrink_to_fit();
    }

    /// Stores `entry`, replacing a cached entry with its ID, and stamps it with `revision`
    /// unless it is equal to the cached one.
    pub(crate) fn upsert_entry(&mut self, entry: RegistrationEntry, revision: u64) -> Upsert {
        if self
            .entries
            .get(entry.id.as_str())
            .is_some_and(|slot| *slot.entry == entry)
        {
            return Upsert::Unchanged;
        }
        let linked = match self.entries.get(entry.id.as_str()) {
            Some(old) if !self.is_membership_change(&old.entry, &entry) => old.linked,
            _ => revision,
        };
        let new = Arc::new(entry);
        let old = self.entries.replace(Slot {
            entry: Arc::clone(&new),
            revision,
            linked,
        });
        if let Some(old) = &old {
            self.unlink(&old.entry);
        }
        self.link(&new);
        match old {
            None => Upsert::Created,
            Some(old) => Upsert::Updated {
                old: old.entry,
                new,
            },
        }
    }

    /// Stores an entry read by the initial load, stamped with `revision`: what
    /// [`upsert_entry`](Self::upsert_entry) does, with one lookup of the ID instead of three
    /// (a load sees each entry once, so there is no cached copy to compare with).
    pub(crate) fn insert_loaded(&mut self, entry: RegistrationEntry, revision: u64) {
        let new = Arc::new(entry);
        let old = self.entries.replace(Slot {
            entry: Arc::clone(&new),
            revision,
            linked: revision,
        });
        if let Some(old) = old {
            self.unlink(&old.entry);
        }
        self.link(&new);
    }

    /// Whether replacing `old` by `new` can move entries into or out of an agent's set.
    pub(crate) fn is_membership_change(
        &self,
        old: &RegistrationEntry,
        new: &RegistrationEntry,
    ) -> bool {
        old.parent_id != new.parent_id
            || old.spiffe_id != new.spiffe_id
            || (self.is_alias(old) && old.selectors != new.selectors)
    }

    /// Removes the entry with this ID; returns it if it was cached.
    pub(crate) fn remove_entry(&mut self, id: &str) -> Option<Arc<RegistrationEntry>> {
        let slot = self.entries.take(id)?;
        self.unlink(&slot.entry);
        Some(slot.entry)
    }

    /// Stores the agent's authorization-relevant fields; returns whether the selectors or the
    /// ban flag changed (a new agent counts as a change). A new certificate serial alone is
    /// stored without counting as a change.
    pub(crate) fn upsert_agent(&mut self, agent: AttestedAgent, revision: u64) -> bool {
        let mut selectors = agent.selectors;
        selectors.sort();
        selectors.dedup();
        if let Some(slot) = self.agents.get_mut(&agent.spiffe_id)
            && slot.selectors == selectors
            && slot.banned == agent.banned
        {
            if *slot.cert_serial_number != *agent.cert_serial_number {
                slot.cert_serial_number = agent.cert_serial_number.into();
            }
            return false;
        }
        self.agents.insert(
            agent.spiffe_id,
            AgentSlot {
                selectors,
                banned: agent.banned,
                cert_serial_number: agent.cert_serial_number.into(),
                revision,
            },
        );
        true
    }

    /// Removes the agent; returns whether it was cached.
    pub(crate) fn remove_agent(&mut self, spiffe_id: &SpiffeId) -> bool {
        self.agents.remove(spiffe_id).is_some()
    }

    fn link(&mut self, entry: &Arc<RegistrationEntry>) {
        let parent = entry.parent_id.as_str();
        match self.children.get_mut(parent) {
            Some(children) => children.push(Arc::clone(entry)),
            None => {
                self.children
                    .insert(Arc::from(parent), vec![Arc::clone(entry)]);
            }
        }
        if self.is_alias(entry) {
            for selector in &entry.selectors {
                self.aliases
                    .entry(selector.clone())
                    .or_default()
                    .push(Arc::clone(entry));
            }
        }
    }

    fn unlink(&mut self, entry: &Arc<RegistrationEntry>) {
        let parent = entry.parent_id.as_str();
        if remove_ptr(self.children.get_mut(parent), entry) {
            self.children.remove(parent);
        }
        if self.is_alias(entry) {
            for selector in &entry.selectors {
                if remove_ptr(self.aliases.get_mut(selector), entry) {
                    self.aliases.remove(selector);
                }
            }
        }
    }
}

/// Removes `entry` (by pointer) from the list; returns whether the list is now empty.
fn remove_ptr(
    list: Option<&mut Vec<Arc<RegistrationEntry>>>,
    entry: &Arc<RegistrationEntry>,
) -> bool {
    let Some(list) = list else {
        return false;
    };
    if let Some(i) = list.iter().position(|e| Arc::ptr_eq(e, entry)) {
        list.swap_remove(i);
    }
    list.is_empty()
}
