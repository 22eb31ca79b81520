use sigil_types::{EntryId, PrivateKeyDer, SpiffeId, TrustDomain, X509Svid};

use super::*;

fn sel(value: &str) -> Selector {
    Selector::new("unix", value).unwrap_or_else(|e| panic!("{value}: {e}"))
}

/// Entries `e0`, `e1`, … (IDs in that order), entry `i` for selector `uid:i`.
fn entries(count: usize) -> Vec<Arc<RegistrationEntry>> {
    let td = TrustDomain::new("example.org").unwrap_or_else(|e| panic!("{e}"));
    let id = |path: &str| SpiffeId::new(&td, path).unwrap_or_else(|e| panic!("{e}"));
    (0..count)
        .map(|i| {
            let mut entry = RegistrationEntry::new(
                id(&format!("/w{i}")),
                id("/spire/agent/x"),
                vec![sel(&format!("uid:{i}"))],
            );
            entry.id = EntryId::new(&format!("e{i}")).unwrap_or_else(|e| panic!("{e}"));
            Arc::new(entry)
        })
        .collect()
}

fn cached(entry: &RegistrationEntry) -> Arc<CachedSvid> {
    Arc::new(CachedSvid {
        svid: X509Svid {
            spiffe_id: entry.spiffe_id.clone(),
            cert_chain: vec![vec![1, 2, 3]],
            private_key: PrivateKeyDer::new(vec![4, 5, 6]),
            expires_at: i64::MAX,
            hint: String::new(),
        },
        renew_at: i64::MAX,
        revision: entry.revision_number,
    })
}

fn ids(chosen: &[&Arc<RegistrationEntry>]) -> Vec<String> {
    chosen.iter().map(|e| e.id.as_str().to_owned()).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn subscribed_first_then_the_most_recently_used_up_to_the_limit() {
    let entries = entries(6);
    let held: HashMap<String, Arc<CachedSvid>> = entries[..4]
        .iter()
        .map(|e| (e.id.as_str().to_owned(), cached(e)))
        .collect();
    let last_use: HashMap<String, u64> = [("e0", 1), ("e2", 4), ("e3", 3)]
        .into_iter()
        .map(|(id, used)| (id.to_owned(), used))
        .collect();
    let active: HashSet<String> = ["e5".to_owned()].into();
    let chosen = select(&entries, &held, &active, &last_use, 3);
    // e5 is subscribed (minted although new); e2 and e3 are the most recently used of the
    // held ones; e0 and e1 are dropped; e4 is not minted ahead (no room).
    assert_eq!(ids(&chosen), strings(&["e5", "e2", "e3"]));
}

#[test]
fn subscribed_entries_go_past_the_limit_and_room_is_filled_ahead() {
    let entries = entries(5);
    let none = HashMap::new();
    let active: HashSet<String> = ["e1".to_owned(), "e3".to_owned()].into();
    let chosen = select(&entries, &none, &active, &HashMap::new(), 1);
    assert_eq!(ids(&chosen), strings(&["e1", "e3"]));

    // Nothing held, no one subscribed: minted ahead in entry order, up to the limit.
    let chosen = select(&entries, &none, &HashSet::new(), &HashMap::new(), 3);
    assert_eq!(ids(&chosen), strings(&["e0", "e1", "e2"]));
    // A limit above the entry count takes them all.
    assert_eq!(
        select(&entries, &none, &HashSet::new(), &HashMap::new(), 1000).len(),
        5
    );
}

#[test]
fn a_subscription_marks_its_entries_active_until_dropped() {
    let entries = entries(3);
    let mut snapshot = Snapshot::default();
    for entry in &entries {
        snapshot
            .entries
            .insert(entry.id.as_str().to_owned(), entry.clone());
    }
    let demand = X509Demand::new(1);
    let workload: BTreeSet<Selector> = [sel("uid:1"), sel("gid:7")].into();
    let first = demand.subscribe(&workload, &snapshot);
    let second = demand.subscribe(&workload, &snapshot);
    let (active, last_use, round) = demand.start_round(&entries);
    assert_eq!(active, HashSet::from(["e1".to_owned()]));
    assert_eq!(last_use.keys().collect::<Vec<_>>(), ["e1"]);
    assert_eq!(round, 1);
    // Not settled: its entry has no SVID, and no round that saw it has been published.
    assert!(!first.settled(&snapshot));
    snapshot.x509_round = round;
    assert!(first.settled(&snapshot), "a published round that saw it");

    drop(first);
    assert_eq!(demand.start_round(&entries).0.len(), 1, "one still open");
    drop(second);
    let (active, last_use, _) = demand.start_round(&entries);
    assert!(active.is_empty());
    assert_eq!(last_use.get("e1"), Some(&2), "the last use is remembered");

    // With its SVID held, a new subscription is settled at once.
    snapshot.svids.insert("e1".to_owned(), cached(&entries[1]));
    snapshot.x509_round = 0;
    let third = demand.subscribe(&workload, &snapshot);
    assert!(third.settled(&snapshot));
    // Entries that went away are forgotten.
    let (_, last_use, _) = demand.start_round(&entries[..1]);
    assert!(last_use.is_empty());
}
