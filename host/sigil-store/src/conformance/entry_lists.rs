//! Entry listing: filters, match modes, paging, counting.

use std::sync::Arc;

use sigil_types::{EntryId, RegistrationEntry};

use super::support::{assert_invalid, entry, id, list_all_entries, paths, sel, td};
use crate::{DataStore, EntryFilter, FederatesWithMatch, MatchMode, PageRequest, SelectorMatch};

async fn list(store: &Arc<dyn DataStore>, filter: &EntryFilter) -> Vec<String> {
    let page = store
        .list_entries(filter, None)
        .await
        .expect("list entries");
    let count = store.count_entries(filter).await.expect("count entries");
    assert_eq!(count, page.items.len() as u64, "count disagrees with list");
    assert_eq!(page.next_token, None);
    paths(&page.items)
}

/// Entries chosen so that each mode gives a different answer for the set {a, b}:
/// A={a}, B={a,b}, C={a,b,c}, D={b,c}, E={d}, G={a's value under another type}.
async fn selector_fixture(store: &Arc<dyn DataStore>) {
    let a = "unix:uid:1";
    let b = "unix:uid:2";
    let c = "unix:gid:1";
    store
        .create_entries(vec![
            entry("/A", "p", &[a]),
            entry("/B", "p", &[a, b]),
            entry("/C", "p", &[a, b, c]),
            entry("/D", "p", &[b, c]),
            entry("/E", "p", &["unix:gid:9"]),
            entry("/G", "p", &["k8s:uid:1"]),
        ])
        .await
        .expect("create");
}

fn by_selectors(mode: MatchMode) -> EntryFilter {
    EntryFilter {
        // Duplicated and unsorted on purpose.
        by_selectors: Some(SelectorMatch {
            selectors: vec![sel("unix:uid:2"), sel("unix:uid:1"), sel("unix:uid:2")],
            mode,
        }),
        ..EntryFilter::default()
    }
}

/// Exact: the entry's selectors equal the given set.
pub async fn entry_list_by_selectors_exact(store: Arc<dyn DataStore>) {
    selector_fixture(&store).await;
    assert_eq!(list(&store, &by_selectors(MatchMode::Exact)).await, ["/B"]);
}

/// Subset: every selector of the entry is in the given set.
pub async fn entry_list_by_selectors_subset(store: Arc<dyn DataStore>) {
    selector_fixture(&store).await;
    assert_eq!(
        list(&store, &by_selectors(MatchMode::Subset)).await,
        ["/A", "/B"]
    );
}

/// Superset: the entry has every given selector.
pub async fn entry_list_by_selectors_superset(store: Arc<dyn DataStore>) {
    selector_fixture(&store).await;
    assert_eq!(
        list(&store, &by_selectors(MatchMode::Superset)).await,
        ["/B", "/C"]
    );
}

/// Any: the entry has at least one given selector.
pub async fn entry_list_by_selectors_any(store: Arc<dyn DataStore>) {
    selector_fixture(&store).await;
    assert_eq!(
        list(&store, &by_selectors(MatchMode::Any)).await,
        ["/A", "/B", "/C", "/D"]
    );
}

/// The four modes over federated trust domains, for the set {x, y}. An entry that federates
/// with nobody matches no mode.
pub async fn entry_list_by_federates_with_modes(store: Arc<dyn DataStore>) {
    let with = |path: &str, tds: &[&str]| -> RegistrationEntry {
        let mut e = entry(path, "p", &["unix:uid:0"]);
        e.federates_with = tds.iter().map(|t| td(t)).collect();
        e
    };
    store
        .create_entries(vec![
            with("/P", &["x.org"]),
            with("/Q", &["x.org", "y.org"]),
            with("/R", &["x.org", "y.org", "z.org"]),
            with("/S", &["y.org", "z.org"]),
            with("/T", &[]),
            with("/U", &["w.org"]),
        ])
        .await
        .expect("create");
    let filter = |mode| EntryFilter {
        by_federates_with: Some(FederatesWithMatch {
            trust_domains: vec![td("y.org"), td("x.org")],
            mode,
        }),
        ..EntryFilter::default()
    };
    assert_eq!(list(&store, &filter(MatchMode::Exact)).await, ["/Q"]);
    assert_eq!(list(&store, &filter(MatchMode::Subset)).await, ["/P", "/Q"]);
    assert_eq!(
        list(&store, &filter(MatchMode::Superset)).await,
        ["/Q", "/R"]
    );
    assert_eq!(
        list(&store, &filter(MatchMode::Any)).await,
        ["/P", "/Q", "/R", "/S"]
    );
}

/// Equality filters on SPIFFE ID, parent ID and hint.
pub async fn entry_list_by_spiffe_id_parent_id_and_hint(store: Arc<dyn DataStore>) {
    let mut hinted = entry("/web", "n2", &["unix:uid:1"]);
    hinted.hint = "frontend".into();
    store
        .create_entries(vec![
            entry("/web", "n1", &["unix:uid:0"]),
            hinted,
            entry("/db", "n1", &["unix:uid:2"]),
            entry("/web2", "n3", &["unix:uid:3"]),
        ])
        .await
        .expect("create");
    let by_id = EntryFilter {
        by_spiffe_id: Some(id("/web")),
        ..EntryFilter::default()
    };
    assert_eq!(list(&store, &by_id).await, ["/web", "/web"]);
    let by_parent = EntryFilter {
        by_parent_id: Some(id("/agent/n1")),
        ..EntryFilter::default()
    };
    assert_eq!(list(&store, &by_parent).await, ["/db", "/web"]);
    let by_hint = EntryFilter {
        by_hint: Some("frontend".into()),
        ..EntryFilter::default()
    };
    let found = store.list_entries(&by_hint, None).await.expect("list");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].parent_id, id("/agent/n2"));
    let nobody = EntryFilter {
        by_parent_id: Some(id("/agent/none")),
        ..EntryFilter::default()
    };
    assert!(list(&store, &nobody).await.is_empty());
}

/// Several filters at once must all hold.
pub async fn entry_list_filters_combine_with_and(store: Arc<dyn DataStore>) {
    let mut fed = entry("/c", "n1", &["k8s:ns:a"]);
    fed.federates_with = vec![td("x.org")];
    store
        .create_entries(vec![
            entry("/a", "n1", &["k8s:ns:a"]),
            entry("/b", "n2", &["k8s:ns:a"]),
            fed,
            entry("/d", "n1", &["k8s:ns:b"]),
        ])
        .await
        .expect("create");
    let selectors = SelectorMatch {
        selectors: vec![sel("k8s:ns:a")],
        mode: MatchMode::Exact,
    };
    let filter = EntryFilter {
        by_parent_id: Some(id("/agent/n1")),
        by_selectors: Some(selectors.clone()),
        ..EntryFilter::default()
    };
    assert_eq!(list(&store, &filter).await, ["/a", "/c"]);
    let filter = EntryFilter {
        by_parent_id: Some(id("/agent/n1")),
        by_selectors: Some(selectors),
        by_federates_with: Some(FederatesWithMatch {
            trust_domains: vec![td("x.org")],
            mode: MatchMode::Any,
        }),
        ..EntryFilter::default()
    };
    assert_eq!(list(&store, &filter).await, ["/c"]);
}

/// Pages in byte order of entry ID, with no duplicates or gaps, and keyset semantics: an
/// entry deleted between pages simply is not returned.
pub async fn entry_list_paging_has_no_duplicates_or_gaps(store: Arc<dyn DataStore>) {
    // IDs whose byte order differs from a case-insensitive or locale order.
    let names = [
        "a-1", "B-1", "_x", "Z", "0", "b", "A", "a", "9z", "zz", "Zz", "m.1", "m-1", "m_1", "M",
        "k", "K", "q", "Q", "r1", "R1", "s", "S", "t", "T",
    ];
    let batch: Vec<RegistrationEntry> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut e = entry(&format!("/w/{i}"), "a", &["k8s:ns:x"]);
            e.id = EntryId::new(name).expect("entry ID");
            e
        })
        .collect();
    store.create_entries(batch).await.expect("create");
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();

    let all = list_all_entries(&store, &EntryFilter::default(), 7).await;
    let ids: Vec<String> = all.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        ids, expected,
        "pages are not in byte order, or have gaps or duplicates"
    );

    let unpaged = store
        .list_entries(&EntryFilter::default(), None)
        .await
        .expect("list");
    let unpaged: Vec<String> = unpaged.items.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(unpaged, expected);

    // First page, then delete the first entry of the second page.
    let first = store
        .list_entries(&EntryFilter::default(), Some(&PageRequest::first(5)))
        .await
        .expect("list");
    assert_eq!(first.items.len(), 5);
    let doomed = EntryId::new(&expected[5]).expect("entry ID");
    store.delete_entry(&doomed).await.expect("delete");
    let second = store
        .list_entries(
            &EntryFilter::default(),
            Some(&PageRequest {
                page_size: 5,
                token: first.next_token,
            }),
        )
        .await
        .expect("list");
    let second: Vec<String> = second.items.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(second, expected[6..11].to_vec());

    // A page size that divides the total ends without an empty extra page.
    let exact = store
        .list_entries(&EntryFilter::default(), Some(&PageRequest::first(24)))
        .await
        .expect("list");
    assert_eq!(exact.items.len(), 24);
    assert_eq!(exact.next_token, None);
}

/// Paging combined with a selector filter.
pub async fn entry_list_paging_with_filter(store: Arc<dyn DataStore>) {
    let batch: Vec<RegistrationEntry> = (0..40)
        .map(|i| {
            let ns = if i % 2 == 0 {
                "k8s:ns:even"
            } else {
                "k8s:ns:odd"
            };
            entry(&format!("/w/{i:02}"), "a", &[ns])
        })
        .collect();
    store.create_entries(batch).await.expect("create");
    let filter = EntryFilter {
        by_selectors: Some(SelectorMatch {
            selectors: vec![sel("k8s:ns:even")],
            mode: MatchMode::Exact,
        }),
        ..EntryFilter::default()
    };
    let all = list_all_entries(&store, &filter, 3).await;
    let mut ids: Vec<String> = all.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids.len(), 20);
    let listed = ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(listed, ids, "paged results are unordered or repeated");
    let expected: Vec<String> = (0..40)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("/w/{i:02}"))
        .collect();
    assert_eq!(paths(&all), expected);
}

/// Page size 0 and empty match sets are refused with the field named.
pub async fn entry_list_invalid_requests_are_refused(store: Arc<dyn DataStore>) {
    let zero = PageRequest::first(0);
    assert_invalid(
        store
            .list_entries(&EntryFilter::default(), Some(&zero))
            .await,
        "page_size",
    );
    let empty_selectors = EntryFilter {
        by_selectors: Some(SelectorMatch {
            selectors: Vec::new(),
            mode: MatchMode::Any,
        }),
        ..EntryFilter::default()
    };
    assert_invalid(
        store.list_entries(&empty_selectors, None).await,
        "by_selectors",
    );
    assert_invalid(store.count_entries(&empty_selectors).await, "by_selectors");
    let empty_tds = EntryFilter {
        by_federates_with: Some(FederatesWithMatch {
            trust_domains: Vec::new(),
            mode: MatchMode::Exact,
        }),
        ..EntryFilter::default()
    };
    assert_invalid(
        store.list_entries(&empty_tds, None).await,
        "by_federates_with",
    );
}

/// Count applies the same filters as list.
pub async fn entry_count_matches_filters(store: Arc<dyn DataStore>) {
    selector_fixture(&store).await;
    assert_eq!(
        store
            .count_entries(&EntryFilter::default())
            .await
            .expect("count"),
        6
    );
    for (mode, expected) in [
        (MatchMode::Exact, 1),
        (MatchMode::Subset, 2),
        (MatchMode::Superset, 2),
        (MatchMode::Any, 4),
    ] {
        let n = store
            .count_entries(&by_selectors(mode))
            .await
            .expect("count");
        assert_eq!(n, expected, "count by selectors {mode:?}");
    }
    let by_parent = EntryFilter {
        by_parent_id: Some(id("/agent/p")),
        ..EntryFilter::default()
    };
    assert_eq!(store.count_entries(&by_parent).await.expect("count"), 6);
}
