//! Unit tests of the index, the authorization walk and the delta computation, on a bare
//! [`State`] (no datastore).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sigil_types::{AttestedAgent, EntryId, RegistrationEntry, Selector, SpiffeId, TrustDomain};

use crate::cache::{LOAD_SEQ, State, server_id};
use crate::index::Index;
use crate::revision::{ChangeLog, Changes, Revision, changes_since};

const EPOCH: u64 = 7;

fn id(path: &str) -> SpiffeId {
    format!("spiffe://example.org{path}").parse().unwrap()
}

fn sel(s: &str) -> Selector {
    s.parse().unwrap()
}

fn entry(entry_id: &str, path: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
    let mut e = RegistrationEntry::new(
        id(path),
        id(parent),
        selectors.iter().map(|s| sel(s)).collect(),
    );
    e.id = EntryId::new(entry_id).unwrap();
    e
}

fn agent(name: &str, selectors: &[&str], banned: bool) -> AttestedAgent {
    AttestedAgent {
        spiffe_id: id(&format!("/spire/agent/x/{name}")),
        attestation_type: "x".into(),
        cert_serial_number: "1".into(),
        cert_not_after: 0,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors: selectors.iter().map(|s| sel(s)).collect(),
        banned,
        can_reattest: false,
        agent_version: String::new(),
    }
}

fn agent_id(name: &str) -> SpiffeId {
    id(&format!("/spire/agent/x/{name}"))
}

struct Harness {
    state: State,
}

impl Harness {
    fn new() -> Self {
        let td = TrustDomain::new("example.org").unwrap();
        Self {
            state: State {
                index: Index::new(server_id(&td)),
                log: ChangeLog::new(LOAD_SEQ, 1000, Duration::from_secs(600)),
                seq: LOAD_SEQ,
            },
        }
    }

    fn put(&mut self, e: RegistrationEntry) {
        self.state.apply(vec![(e.id.clone(), Some(e))], vec![]);
    }

    fn delete(&mut self, entry_id: &str) {
        self.state
            .apply(vec![(EntryId::new(entry_id).unwrap(), None)], vec![]);
    }

    fn put_agent(&mut self, a: AttestedAgent) {
        self.state
            .apply(vec![], vec![(a.spiffe_id.clone(), Some(a))]);
    }

    fn revision(&self) -> Revision {
        Revision {
            epoch: EPOCH,
            seq: self.state.seq,
        }
    }

    fn authorized(&self, agent: &str) -> BTreeSet<String> {
        self.state
            .index
            .authorized(&agent_id(agent))
            .iter()
            .map(|e| e.id.to_string())
            .collect()
    }

    fn changes(&self, agent: &str, since: Revision) -> Changes {
        changes_since(
            &self.state.index,
            &self.state.log,
            self.revision(),
            &agent_id(agent),
            since,
        )
    }

    /// The delta as (upserted IDs, deleted IDs); panics on a full answer.
    fn delta(&self, agent: &str, since: Revision) -> (BTreeSet<String>, BTreeSet<String>) {
        match self.changes(agent, since) {
            Changes::Delta {
                upserted, deleted, ..
            } => (
                upserted.iter().map(|e| e.id.to_string()).collect(),
                deleted.iter().map(ToString::to_string).collect(),
            ),
            full @ Changes::Full { .. } => panic!("expected a delta, got {full:?}"),
        }
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

const A: &str = "/spire/agent/x/a";
const SERVER: &str = "/spire/server";

/// Agent `a` (selectors node:a, zone:1), agent `b` (node:b, zone:1), alias `/alias/zone1`
/// on zone:1, and: `w1` under a, `w2` under b, `z` under the alias, `d` under w1, `dd` under
/// d.
fn fixture() -> Harness {
    let mut h = Harness::new();
    h.put_agent(agent("a", &["node:a", "zone:1"], false));
    h.put_agent(agent("b", &["node:b", "zone:1"], false));
    h.put(entry("alias", "/alias/zone1", SERVER, &["zone:1"]));
    h.put(entry("w1", "/w1", A, &["unix:uid:1"]));
    h.put(entry("w2", "/w2", "/spire/agent/x/b", &["unix:uid:2"]));
    h.put(entry("z", "/z", "/alias/zone1", &["unix:uid:3"]));
    h.put(entry("d", "/d", "/w1", &["unix:uid:4"]));
    h.put(entry("dd", "/dd", "/d", &["unix:uid:5"]));
    h
}

#[test]
fn direct_alias_and_descendants() {
    let h = fixture();
    assert_eq!(h.authorized("a"), set(&["w1", "z", "d", "dd"]));
    assert_eq!(h.authorized("b"), set(&["w2", "z"]));
    assert_eq!(h.authorized("nobody"), set(&[]));
}

#[test]
fn alias_needs_every_selector() {
    let mut h = fixture();
    h.put(entry(
        "alias2",
        "/alias/both",
        SERVER,
        &["zone:1", "node:a"],
    ));
    h.put(entry("y", "/y", "/alias/both", &["unix:uid:6"]));
    assert!(h.authorized("a").contains("y"));
    assert!(!h.authorized("b").contains("y"));
}

#[test]
fn banned_agent_gets_nothing() {
    let mut h = fixture();
    h.put_agent(agent("a", &["node:a", "zone:1"], true));
    assert_eq!(h.authorized("a"), set(&[]));
    assert!(
        h.state
            .index
            .authorized_entry(&agent_id("a"), &id("/w1"))
            .is_none()
    );
}

#[test]
fn cycle_ends_and_yields_each_entry_once() {
    let mut h = fixture();
    h.put(entry("c1", "/c1", "/c2", &["unix:uid:7"]));
    h.put(entry("c2", "/c2", "/c1", &["unix:uid:8"]));
    h.put(entry("into", "/c1", A, &["unix:uid:9"]));
    let found = h.state.index.authorized(&agent_id("a"));
    let ids: Vec<_> = found.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        ids.len(),
        set(&ids.iter().map(String::as_str).collect::<Vec<_>>()).len()
    );
    assert!(h.authorized("a").is_superset(&set(&["into", "c1", "c2"])));
    // Not reachable from b.
    assert!(!h.authorized("b").contains("c1"));
}

#[test]
fn authorized_entry_is_the_csr_check() {
    let h = fixture();
    let found = h.state.index.authorized_entry(&agent_id("a"), &id("/dd"));
    assert_eq!(found.map(|e| e.id.to_string()), Some("dd".to_owned()));
    assert!(
        h.state
            .index
            .authorized_entry(&agent_id("a"), &id("/w2"))
            .is_none()
    );
    assert!(
        h.state
            .index
            .authorized_entry(&agent_id("b"), &id("/z"))
            .is_some()
    );
}

#[test]
fn equal_upsert_is_not_a_change() {
    let mut h = fixture();
    let before = h.state.seq;
    let same = (*h.state.index.entry("w1").unwrap().entry).clone();
    h.put(same);
    assert_eq!(h.state.seq, before);
}

#[test]
fn new_certificate_serial_is_kept_without_a_revision() {
    let mut h = fixture();
    let before = h.revision();
    let mut renewed = agent("a", &["node:a", "zone:1"], false);
    renewed.cert_serial_number = "77".into();
    h.put_agent(renewed);
    assert_eq!(
        h.revision(),
        before,
        "a serial alone changes no authorization"
    );
    let slot = h.state.index.agent(&agent_id("a")).unwrap();
    assert_eq!(&*slot.cert_serial_number, "77");
}

#[test]
fn delta_reports_upserts_and_deletions() {
    let mut h = fixture();
    let r0 = h.revision();
    assert_eq!(h.delta("a", r0), (set(&[]), set(&[])));

    let mut w1 = (*h.state.index.entry("w1").unwrap().entry).clone();
    w1.hint = "changed".into();
    h.put(w1);
    h.put(entry("new", "/new", A, &["unix:uid:10"]));
    h.delete("z");
    assert_eq!(h.delta("a", r0), (set(&["w1", "new"]), set(&["z"])));
    // b lost z too, and sees nothing of a's changes.
    assert_eq!(h.delta("b", r0), (set(&[]), set(&["z"])));
    // Content-only updates are not logged.
    assert_eq!(h.state.log.len(), 1);
}

#[test]
fn reparenting_takes_the_subtree_away() {
    let mut h = fixture();
    let r0 = h.revision();
    // w1 moves from a to b: a loses w1, d, dd; b gains all three.
    let mut w1 = (*h.state.index.entry("w1").unwrap().entry).clone();
    w1.parent_id = agent_id("b");
    h.put(w1);
    assert_eq!(h.delta("a", r0), (set(&[]), set(&["w1", "d", "dd"])));
    assert_eq!(h.delta("b", r0), (set(&["w1", "d", "dd"]), set(&[])));
}

#[test]
fn new_parent_entry_brings_existing_children() {
    let mut h = fixture();
    h.put(entry("orphan", "/o", "/lonely", &["unix:uid:11"]));
    let r0 = h.revision();
    h.put(entry("bridge", "/lonely", A, &["unix:uid:12"]));
    assert_eq!(h.delta("a", r0), (set(&["bridge", "orphan"]), set(&[])));
    let r1 = h.revision();
    h.delete("bridge");
    assert_eq!(h.delta("a", r1), (set(&[]), set(&["bridge", "orphan"])));
}

#[test]
fn alias_selector_change_moves_its_children() {
    let mut h = fixture();
    let r0 = h.revision();
    let mut alias = (*h.state.index.entry("alias").unwrap().entry).clone();
    alias.selectors = vec![sel("node:b")];
    h.put(alias);
    assert_eq!(h.delta("a", r0), (set(&[]), set(&["z"])));
    assert_eq!(h.delta("b", r0), (set(&["z"]), set(&[])));
}

#[test]
fn full_answer_when_delta_is_impossible() {
    let mut h = fixture();
    let r0 = h.revision();
    // Another epoch.
    let foreign = Revision {
        epoch: 1,
        seq: r0.seq,
    };
    assert!(matches!(h.changes("a", foreign), Changes::Full { .. }));
    // From the future.
    let future = Revision {
        epoch: EPOCH,
        seq: r0.seq + 10,
    };
    assert!(matches!(h.changes("a", future), Changes::Full { .. }));
    // The agent's selectors changed: aliases may differ.
    h.put_agent(agent("a", &["node:a"], false));
    match h.changes("a", r0) {
        Changes::Full { entries, .. } => {
            let ids: BTreeSet<_> = entries.iter().map(|e| e.id.to_string()).collect();
            assert_eq!(ids, set(&["w1", "d", "dd"]));
        }
        delta => panic!("expected a full answer, got {delta:?}"),
    }
    // Unknown agent: full and empty.
    assert!(matches!(h.changes("nobody", r0), Changes::Full { entries, .. } if entries.is_empty()));
}

#[test]
fn log_beyond_its_limit_forces_full_answers() {
    let mut h = fixture();
    h.state.log = ChangeLog::new(h.state.seq, 2, Duration::from_secs(600));
    let r0 = h.revision();
    for i in 0..3 {
        h.put(entry(
            &format!("t{i}"),
            &format!("/t{i}"),
            A,
            &["unix:uid:1"],
        ));
        h.delete(&format!("t{i}"));
    }
    assert_eq!(h.state.log.len(), 2);
    assert!(matches!(h.changes("a", r0), Changes::Full { .. }));
    let recent = Revision {
        epoch: EPOCH,
        seq: h.state.log.horizon(),
    };
    assert!(matches!(h.changes("a", recent), Changes::Delta { .. }));
}

#[test]
fn entries_share_one_allocation_across_indexes() {
    let h = fixture();
    let by_id = Arc::clone(&h.state.index.entry("d").unwrap().entry);
    let by_parent = h.state.index.children("spiffe://example.org/w1");
    assert!(by_parent.iter().any(|e| Arc::ptr_eq(e, &by_id)));
}
