//! SPIRE's authorization rules over the [`Index`].
//!
//! An agent may serve:
//! 1. every entry whose parent ID is the agent's SPIFFE ID;
//! 2. for every node-alias entry (parented to the server) whose selectors are all among the
//!    agent's attested selectors, every entry parented to the alias's SPIFFE ID;
//! 3. recursively, every entry parented to the SPIFFE ID of an entry found so far.
//!
//! Each parent ID is expanded once, so a cycle of entries (A parented to B's SPIFFE ID and B
//! to A's) ends. Banned and unknown agents are authorized for nothing. The alias entries
//! themselves are not part of the answer, as in SPIRE.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use sigil_types::{RegistrationEntry, Selector, SpiffeId};

use crate::index::{AgentSlot, Index};

impl Index {
    /// The node-alias entries whose selectors are a subset of `selectors` (sorted and
    /// deduplicated).
    pub(crate) fn matching_aliases(&self, selectors: &[Selector]) -> Vec<&Arc<RegistrationEntry>> {
        // Count, per alias, how many of its selectors the agent has; an alias matches when
        // all of them are (selectors of stored entries are deduplicated).
        let mut hits: HashMap<&str, (usize, &Arc<RegistrationEntry>)> = HashMap::new();
        for selector in selectors {
            for alias in self.aliases_with(selector) {
                hits.entry(alias.id.as_str()).or_insert((0, alias)).0 += 1;
            }
        }
        hits.into_values()
            .filter(|(n, alias)| *n == alias.selectors.len())
            .map(|(_, alias)| alias)
            .collect()
    }

    /// Walks the entries `agent` is authorized for, calling `visit(entry, via_moved)` once per
    /// entry, where `via_moved` is true when the path the walk took to the entry starts at an
    /// alias for which `moved` holds or passes through an ancestor for which it holds. Stops when `visit` breaks.
    /// Returns the parent IDs expanded (the agent's, the matching aliases' SPIFFE IDs, and the
    /// SPIFFE IDs of the entries visited).
    pub(crate) fn walk<'a>(
        &'a self,
        agent_id: &'a SpiffeId,
        agent: &'a AgentSlot,
        moved: impl Fn(&RegistrationEntry) -> bool,
        mut visit: impl FnMut(&'a Arc<RegistrationEntry>, bool) -> ControlFlow<()>,
    ) -> HashSet<&'a str> {
        let mut expanded = HashSet::new();
        if agent.banned {
            return expanded;
        }
        let mut queue: Vec<(&'a str, bool)> = vec![(agent_id.as_str(), false)];
        queue.extend(
            self.matching_aliases(&agent.selectors)
                .into_iter()
                .map(|alias| (alias.spiffe_id.as_str(), moved(alias))),
        );
        // Depth-first: the order of the answer is not part of the contract.
        while let Some((parent, inherited)) = queue.pop() {
            if !expanded.insert(parent) {
                continue;
            }
            for child in self.children(parent) {
                if visit(child, inherited).is_break() {
                    return expanded;
                }
                queue.push((child.spiffe_id.as_str(), inherited || moved(child)));
            }
        }
        expanded
    }

    /// Every entry the agent is authorized for; empty for unknown and banned agents.
    pub(crate) fn authorized(&self, agent_id: &SpiffeId) -> Vec<Arc<RegistrationEntry>> {
        let Some(agent) = self.agent(agent_id) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        self.walk(
            agent_id,
            agent,
            |_| false,
            |entry, _| {
                found.push(Arc::clone(entry));
                ControlFlow::Continue(())
            },
        );
        found
    }

    /// An entry with SPIFFE ID `spiffe_id` that the agent is authorized for, if any.
    pub(crate) fn authorized_entry(
        &self,
        agent_id: &SpiffeId,
        spiffe_id: &SpiffeId,
    ) -> Option<Arc<RegistrationEntry>> {
        let agent = self.agent(agent_id)?;
        let mut found = None;
        self.walk(
            agent_id,
            agent,
            |_| false,
            |entry, _| {
                if entry.spiffe_id == *spiffe_id {
                    found = Some(Arc::clone(entry));
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        found
    }
}

/// Whether every selector of `subset` is in `set` (both sorted).
pub(crate) fn is_subset(subset: &[Selector], set: &[Selector]) -> bool {
    subset.iter().all(|s| set.binary_search(s).is_ok())
}
