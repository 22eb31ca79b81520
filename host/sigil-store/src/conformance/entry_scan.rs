//! Scanning every entry: [`DataStore::scan_entries`].

use std::collections::BTreeMap;
use std::sync::Arc;

use sigil_types::{EntryId, RegistrationEntry};

use super::support::{assert_invalid, entry, td};
use crate::{DataStore, EntryFilter, PageRequest};

/// Every entry, following pages of `page_size`, with each page checked for its size.
async fn scan_all(store: &Arc<dyn DataStore>, page_size: u32) -> Vec<RegistrationEntry> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(page_size);
    loop {
        let result = store.scan_entries(&page).await.expect("scan entries");
        assert!(result.items.len() <= page_size as usize, "page is too long");
        if result.next_token.is_some() {
            assert_eq!(
                result.items.len(),
                page_size as usize,
                "short page mid-scan"
            );
        }
        out.extend(result.items);
        match result.next_token {
            Some(token) => page.token = Some(token),
            None => return out,
        }
    }
}

/// By entry ID; fails on a duplicate.
fn by_id(entries: Vec<RegistrationEntry>) -> BTreeMap<String, RegistrationEntry> {
    let mut out = BTreeMap::new();
    for e in entries {
        let id = e.id.to_string();
        assert!(out.insert(id.clone(), e).is_none(), "entry {id} seen twice");
    }
    out
}

/// A scan returns every entry once, exactly as `list_entries` does, whatever the page size;
/// entries that exist throughout a scan are seen once even when others change between pages.
pub async fn entry_scan_returns_every_entry_once(store: Arc<dyn DataStore>) {
    let empty = store
        .scan_entries(&PageRequest::first(10))
        .await
        .expect("scan an empty store");
    assert!(empty.items.is_empty());
    assert_eq!(empty.next_token, None);

    let batch: Vec<RegistrationEntry> = (0..40)
        .map(|i| {
            // Unsorted selectors and trust domains: the scan must return them canonical.
            let mut e = entry(
                &format!("/w/{i}"),
                "a",
                &[&format!("unix:uid:{i}"), "k8s:ns:scan"],
            );
            if i % 3 == 0 {
                e.federates_with = vec![td("z.example"), td("fed.example")];
            }
            if i % 4 == 0 {
                e.dns_names = vec!["b.example.org".into(), "a.example.org".into()];
                e.hint = format!("hint-{i}");
                e.expires_at = Some(2_000_000_000 + i);
            }
            e
        })
        .collect();
    store.create_entries(batch).await.expect("create");
    let expected = by_id(
        store
            .list_entries(&EntryFilter::default(), None)
            .await
            .expect("list")
            .items,
    );
    assert_eq!(expected.len(), 40);
    for page_size in [1, 7, 40, 1000] {
        let scanned = by_id(scan_all(&store, page_size).await);
        assert_eq!(scanned, expected, "scan with pages of {page_size}");
    }
    let exact = store
        .scan_entries(&PageRequest::first(40))
        .await
        .expect("scan");
    assert_eq!(exact.next_token, None, "a full last page has no next token");

    // Writes between pages: the entries that exist throughout are each seen once.
    let first = store
        .scan_entries(&PageRequest::first(10))
        .await
        .expect("scan");
    let mut seen = by_id(first.items);
    let doomed = expected
        .keys()
        .find(|id| !seen.contains_key(*id))
        .expect("an entry beyond the first page")
        .clone();
    store
        .delete_entry(&EntryId::new(&doomed).expect("entry ID"))
        .await
        .expect("delete");
    store
        .create_entry(entry("/late", "a", &["unix:uid:late"]))
        .await
        .expect("create");
    let mut page = PageRequest {
        page_size: 10,
        token: first.next_token,
    };
    while page.token.is_some() {
        let result = store.scan_entries(&page).await.expect("scan");
        for e in result.items {
            let id = e.id.to_string();
            assert!(
                seen.insert(id.clone(), e).is_none(),
                "entry {id} seen twice"
            );
        }
        page.token = result.next_token;
    }
    assert!(!seen.contains_key(&doomed), "a deleted entry was scanned");
    for (id, e) in &expected {
        if *id != doomed {
            assert_eq!(seen.get(id), Some(e), "entry {id} missed or changed");
        }
    }
}

/// A zero page size and a token that `scan_entries` did not hand out are refused.
pub async fn entry_scan_invalid_requests_are_refused(store: Arc<dyn DataStore>) {
    assert_invalid(
        store.scan_entries(&PageRequest::first(0)).await,
        "page_size",
    );
    assert_invalid(
        store
            .scan_entries(&PageRequest {
                page_size: 10,
                token: Some("not-a-token".into()),
            })
            .await,
        "page_token",
    );
}
