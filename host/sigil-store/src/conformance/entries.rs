//! Entry create, fetch, update, delete, batch create and prune.

use std::sync::Arc;

use sigil_types::{EntryId, RegistrationEntry};

use super::support::{assert_duplicate_of, assert_invalid, assert_not_found, entry, id, sel, td};
use crate::{DataStore, EntryFilter, EntryMask, Error, ObjectKind};

fn now() -> i64 {
    crate::sql::now()
}

async fn count(store: &Arc<dyn DataStore>) -> u64 {
    store
        .count_entries(&EntryFilter::default())
        .await
        .expect("count entries")
}

/// Create stamps `created_at`, starts at revision 0, and stores the canonical form.
pub async fn entry_create_assigns_created_at_and_revision(store: Arc<dyn DataStore>) {
    let mut given = entry("/web", "a", &["unix:uid:0", "k8s:ns:web", "unix:uid:0"]);
    given.revision_number = 7;
    given.created_at = 1;
    let before = now();
    let created = store.create_entry(given.clone()).await.expect("create");
    let after = now();
    assert!(
        (before..=after).contains(&created.created_at),
        "created_at {} is not now",
        created.created_at
    );
    assert_eq!(created.revision_number, 0);
    assert_eq!(
        created.selectors,
        vec![sel("k8s:ns:web"), sel("unix:uid:0")]
    );
    let fetched = store.fetch_entry(&created.id).await.expect("fetch");
    assert_eq!(fetched.as_ref(), Some(&created));
}

/// Every field survives a round trip, including DNS name order.
pub async fn entry_create_round_trips_every_field(store: Arc<dyn DataStore>) {
    let mut given = entry("/full", "a", &["unix:uid:1000", "unix:gid:1000"]);
    given.x509_svid_ttl = 3600;
    given.jwt_svid_ttl = 300;
    given.federates_with = vec![td("b.example"), td("a.example")];
    given.admin = true;
    given.downstream = true;
    given.dns_names = vec!["z.example.org".into(), "a.example.org".into()];
    given.hint = "internal".into();
    given.store_svid = true;
    given.expires_at = Some(4_000_000_000);
    let created = store.create_entry(given.clone()).await.expect("create");
    let fetched = store
        .fetch_entry(&given.id)
        .await
        .expect("fetch")
        .expect("entry exists");
    assert_eq!(fetched, created);
    given.canonicalize();
    given.created_at = created.created_at;
    assert_eq!(fetched, given);
    assert_eq!(fetched.dns_names, vec!["z.example.org", "a.example.org"]);
    assert_eq!(
        fetched.federates_with,
        vec![td("a.example"), td("b.example")]
    );
}

/// A client-assigned ID is kept.
pub async fn entry_create_keeps_client_assigned_id(store: Arc<dyn DataStore>) {
    let mut given = entry("/web", "a", &["unix:uid:0"]);
    given.id = EntryId::new("my-entry.1").expect("entry ID");
    let created = store.create_entry(given).await.expect("create");
    assert_eq!(created.id.as_str(), "my-entry.1");
    assert!(
        store
            .fetch_entry(&created.id)
            .await
            .expect("fetch")
            .is_some()
    );
}

/// Same SPIFFE ID, parent ID and selector set (in any order): refused, carrying the stored
/// entry.
pub async fn entry_duplicate_is_already_exists(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/web", "a", &["unix:uid:0", "unix:gid:0"]))
        .await
        .expect("create");
    let again = entry("/web", "a", &["unix:gid:0", "unix:uid:0"]);
    assert_duplicate_of(store.create_entry(again).await, &stored);
    assert_eq!(count(&store).await, 1);
}

/// A client-assigned ID that is taken: refused, carrying the entry that has it.
pub async fn entry_duplicate_id_is_already_exists(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let mut other = entry("/db", "b", &["unix:uid:1"]);
    other.id = stored.id.clone();
    assert_duplicate_of(store.create_entry(other).await, &stored);
}

/// Entries that differ only in selectors, or only in parent, are distinct.
pub async fn entry_same_identity_other_selectors_is_allowed(store: Arc<dyn DataStore>) {
    store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    store
        .create_entry(entry("/web", "a", &["unix:uid:0", "unix:gid:0"]))
        .await
        .expect("superset of selectors is another entry");
    store
        .create_entry(entry("/web", "b", &["unix:uid:0"]))
        .await
        .expect("other parent is another entry");
    assert_eq!(count(&store).await, 3);
}

/// Invalid fields are refused with InvalidArgument naming the field, and nothing is stored.
pub async fn entry_invalid_fields_are_invalid_argument(store: Arc<dyn DataStore>) {
    assert_invalid(
        store.create_entry(entry("/web", "a", &[])).await,
        "selectors",
    );
    let mut bad_dns = entry("/web", "a", &["unix:uid:0"]);
    bad_dns.dns_names = vec!["not a name".into()];
    assert_invalid(store.create_entry(bad_dns).await, "dns_names");
    let mut bad_hint = entry("/web", "a", &["unix:uid:0"]);
    bad_hint.hint = "x".repeat(2000);
    assert_invalid(store.create_entry(bad_hint).await, "hint");
    let mut mixed = entry("/web", "a", &["unix:uid:0", "k8s:ns:web"]);
    mixed.store_svid = true;
    assert_invalid(store.create_entry(mixed).await, "selectors");
    assert_eq!(count(&store).await, 0);
}

/// Fetching an absent entry is `None`, not an error.
pub async fn entry_fetch_missing_is_none(store: Arc<dyn DataStore>) {
    let missing = EntryId::new("nope").expect("entry ID");
    assert_eq!(store.fetch_entry(&missing).await.expect("fetch"), None);
}

/// Only the masked fields change; the revision goes up by one per update.
pub async fn entry_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let mut original = entry("/web", "a", &["unix:uid:0"]);
    original.hint = "old".into();
    original.x509_svid_ttl = 100;
    let stored = store.create_entry(original).await.expect("create");

    let mut change = entry("/other", "z", &["unix:uid:9"]);
    change.id = stored.id.clone();
    change.hint = "new".into();
    change.x509_svid_ttl = 999;
    change.admin = true;
    let mask = EntryMask {
        hint: true,
        ..EntryMask::default()
    };
    let updated = store
        .update_entry(change.clone(), &mask)
        .await
        .expect("update");
    let mut expected = stored.clone();
    expected.hint = "new".into();
    expected.revision_number = 1;
    assert_eq!(updated, expected);
    assert_eq!(
        store.fetch_entry(&stored.id).await.expect("fetch"),
        Some(expected)
    );

    let mask = EntryMask {
        selectors: true,
        admin: true,
        ..EntryMask::default()
    };
    let updated = store.update_entry(change, &mask).await.expect("update");
    assert_eq!(updated.selectors, vec![sel("unix:uid:9")]);
    assert!(updated.admin);
    assert_eq!(
        updated.spiffe_id, stored.spiffe_id,
        "unmasked field changed"
    );
    assert_eq!(updated.x509_svid_ttl, 100, "unmasked field changed");
    assert_eq!(updated.revision_number, 2);
    assert_eq!(updated.created_at, stored.created_at);
}

/// With every field masked, the stored entry becomes the given one.
pub async fn entry_update_every_field(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let mut change = entry("/db", "b", &["k8s:ns:db", "k8s:sa:db"]);
    change.id = stored.id.clone();
    change.x509_svid_ttl = 60;
    change.jwt_svid_ttl = 30;
    change.federates_with = vec![td("other.example")];
    change.admin = true;
    change.downstream = true;
    change.dns_names = vec!["db.example.org".into()];
    change.hint = "db".into();
    change.store_svid = true;
    change.expires_at = Some(5_000_000_000);
    let updated = store
        .update_entry(change.clone(), &EntryMask::ALL)
        .await
        .expect("update");
    change.created_at = stored.created_at;
    change.revision_number = 1;
    assert_eq!(updated, change);
    assert_eq!(
        store.fetch_entry(&stored.id).await.expect("fetch"),
        Some(change)
    );
    let by_new_selector = crate::EntryFilter {
        by_selectors: Some(crate::SelectorMatch {
            selectors: vec![sel("k8s:sa:db")],
            mode: crate::MatchMode::Any,
        }),
        ..EntryFilter::default()
    };
    assert_eq!(
        store.count_entries(&by_new_selector).await.expect("count"),
        1
    );
}

/// An update that would make the entry similar to another is refused with that other entry.
pub async fn entry_update_to_duplicate_is_refused(store: Arc<dyn DataStore>) {
    let first = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let second = store
        .create_entry(entry("/web", "a", &["unix:uid:1"]))
        .await
        .expect("create");
    let mut change = second.clone();
    change.selectors = vec![sel("unix:uid:0")];
    let mask = EntryMask {
        selectors: true,
        ..EntryMask::default()
    };
    assert_duplicate_of(store.update_entry(change, &mask).await, &first);
    assert_eq!(
        store.fetch_entry(&second.id).await.expect("fetch"),
        Some(second)
    );
}

/// Updating an absent entry is NotFound.
pub async fn entry_update_missing_is_not_found(store: Arc<dyn DataStore>) {
    let ghost = entry("/web", "a", &["unix:uid:0"]);
    assert_not_found(
        store.update_entry(ghost, &EntryMask::ALL).await,
        ObjectKind::Entry,
    );
}

/// An update that would make the entry invalid is refused and leaves it as it was.
pub async fn entry_update_invalid_is_refused_and_changes_nothing(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let mut change = stored.clone();
    change.selectors.clear();
    let mask = EntryMask {
        selectors: true,
        ..EntryMask::default()
    };
    assert_invalid(store.update_entry(change, &mask).await, "selectors");
    let mut change = stored.clone();
    change.dns_names = vec!["-bad-".into()];
    let mask = EntryMask {
        dns_names: true,
        ..EntryMask::default()
    };
    assert_invalid(store.update_entry(change, &mask).await, "dns_names");
    assert_eq!(
        store.fetch_entry(&stored.id).await.expect("fetch"),
        Some(stored)
    );
}

/// Delete returns the deleted entry; it is gone afterwards.
pub async fn entry_delete_returns_the_entry(store: Arc<dyn DataStore>) {
    let mut given = entry("/web", "a", &["unix:uid:0"]);
    given.federates_with = vec![td("other.example")];
    let stored = store.create_entry(given).await.expect("create");
    let deleted = store.delete_entry(&stored.id).await.expect("delete");
    assert_eq!(deleted, stored);
    assert_eq!(store.fetch_entry(&stored.id).await.expect("fetch"), None);
    assert_eq!(count(&store).await, 0);
    // The same registration can be made again.
    store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create again");
}

/// Deleting an absent entry is NotFound.
pub async fn entry_delete_missing_is_not_found(store: Arc<dyn DataStore>) {
    let missing = EntryId::new("nope").expect("entry ID");
    assert_not_found(store.delete_entry(&missing).await, ObjectKind::Entry);
}

/// A large batch (crossing the internal chunk sizes) is stored whole and in order.
pub async fn entry_batch_create_stores_all(store: Arc<dyn DataStore>) {
    let batch: Vec<RegistrationEntry> = (0..300)
        .map(|i| {
            let mut e = entry(
                &format!("/w/{i}"),
                "a",
                &["k8s:ns:batch", &format!("unix:uid:{i}")],
            );
            if i % 3 == 0 {
                e.federates_with = vec![td("fed.example")];
            }
            e
        })
        .collect();
    let created = store
        .create_entries(batch.clone())
        .await
        .expect("batch create");
    assert_eq!(created.len(), 300);
    for (given, created) in batch.iter().zip(&created) {
        assert_eq!(given.id, created.id, "batch results keep the given order");
    }
    assert_eq!(count(&store).await, 300);
    let sample = store
        .fetch_entry(&created[150].id)
        .await
        .expect("fetch")
        .expect("entry exists");
    assert_eq!(sample, created[150]);
    assert_eq!(sample.federates_with, vec![td("fed.example")]);
}

/// A batch with one duplicate of a stored entry stores nothing.
pub async fn entry_batch_create_failure_leaves_nothing(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/existing", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let latest = store.latest_event_id().await.expect("latest event");
    let mut batch: Vec<RegistrationEntry> = (0..100)
        .map(|i| entry(&format!("/new/{i}"), "a", &[&format!("unix:uid:{}", i + 1)]))
        .collect();
    batch.insert(70, entry("/existing", "a", &["unix:uid:0"]));
    assert_duplicate_of(store.create_entries(batch).await, &stored);
    assert_eq!(count(&store).await, 1, "a failed batch left entries behind");
    assert_eq!(
        store.latest_event_id().await.expect("latest event"),
        latest,
        "a failed batch left events behind"
    );
}

/// Two similar entries, or two with one ID, in the same batch are refused.
pub async fn entry_batch_create_duplicate_within_batch_is_refused(store: Arc<dyn DataStore>) {
    let first = entry("/web", "a", &["unix:uid:0"]);
    let similar = entry("/web", "a", &["unix:uid:0"]);
    let result = store.create_entries(vec![first.clone(), similar]).await;
    assert!(
        matches!(&result, Err(Error::AlreadyExists { existing_entry: Some(e), .. }) if e.id == first.id),
        "got {result:?}"
    );
    let mut same_id = entry("/db", "b", &["unix:uid:1"]);
    same_id.id = first.id.clone();
    let result = store.create_entries(vec![first, same_id]).await;
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "got {result:?}"
    );
    assert_eq!(count(&store).await, 0);
}

/// An invalid entry anywhere in a batch fails it with the field named.
pub async fn entry_batch_create_invalid_entry_names_field(store: Arc<dyn DataStore>) {
    let mut batch: Vec<RegistrationEntry> = (0..10)
        .map(|i| entry(&format!("/w/{i}"), "a", &["unix:uid:0"]))
        .collect();
    batch[7].hint = "bad\u{0}hint".into();
    assert_invalid(store.create_entries(batch).await, "hint");
    assert_eq!(count(&store).await, 0);
}

/// Racing creates of one registration: exactly one wins, the rest see AlreadyExists.
pub async fn entry_concurrent_duplicates_create_once(store: Arc<dyn DataStore>) {
    for round in 0..5 {
        let path = format!("/race/{round}");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                store.create_entry(entry(&path, "a", &["unix:uid:0"])).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => created += 1,
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(
            created, 1,
            "round {round}: one registration was created {created} times"
        );
    }
    assert_eq!(count(&store).await, 5);
}

/// Prune deletes entries that expired strictly before the time, and no others.
pub async fn entry_prune_removes_expired(store: Arc<dyn DataStore>) {
    let mut old = entry("/old", "a", &["unix:uid:0"]);
    old.expires_at = Some(1000);
    let mut edge = entry("/edge", "a", &["unix:uid:0"]);
    edge.expires_at = Some(2000);
    let mut later = entry("/later", "a", &["unix:uid:0"]);
    later.expires_at = Some(3000);
    let never = entry("/never", "a", &["unix:uid:0"]);
    store
        .create_entries(vec![old.clone(), edge, later, never])
        .await
        .expect("create");
    assert_eq!(store.prune_entries(2000).await.expect("prune"), 1);
    assert_eq!(store.fetch_entry(&old.id).await.expect("fetch"), None);
    assert_eq!(count(&store).await, 3);
    assert_eq!(store.prune_entries(2000).await.expect("prune again"), 0);
    assert_eq!(store.prune_entries(i64::MAX).await.expect("prune all"), 2);
    let remaining = store
        .list_entries(&EntryFilter::default(), None)
        .await
        .expect("list");
    assert_eq!(remaining.items.len(), 1);
    assert_eq!(remaining.items[0].spiffe_id, id("/never"));
}
