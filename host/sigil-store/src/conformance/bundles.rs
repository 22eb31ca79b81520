//! Bundles, including delete modes and pruning.

use std::sync::Arc;

use sigil_types::{Bundle, X509Authority};

use super::support::{
    assert_already_exists, assert_invalid, assert_not_found, bundle, ca_cert, entry, jan1,
    jwt_authority, td,
};
use crate::{BundleMask, DataStore, DeleteMode, EntryFilter, Error, ObjectKind, PageRequest};

fn full_bundle(trust_domain: &str) -> Bundle {
    let cert = ca_cert(2090);
    let mut b = bundle(trust_domain, &[&cert]);
    b.jwt_authorities = vec![jwt_authority("k1", 4_000_000_000)];
    b.refresh_hint = 300;
    b.sequence_number = 4;
    b
}

/// Every field survives a round trip.
pub async fn bundle_create_fetch_round_trip(store: Arc<dyn DataStore>) {
    let given = full_bundle("example.org");
    let created = store.create_bundle(given.clone()).await.expect("create");
    assert_eq!(created, given);
    assert_eq!(
        store.fetch_bundle(&td("example.org")).await.expect("fetch"),
        Some(given)
    );
    assert_eq!(
        store.fetch_bundle(&td("none.org")).await.expect("fetch"),
        None
    );
}

/// A second bundle for one trust domain, and an invalid bundle, are refused.
pub async fn bundle_create_duplicate_and_invalid_are_refused(store: Arc<dyn DataStore>) {
    store
        .create_bundle(full_bundle("example.org"))
        .await
        .expect("create");
    assert_already_exists(
        store.create_bundle(full_bundle("example.org")).await,
        ObjectKind::Bundle,
    );
    let mut broken = bundle("broken.org", &[]);
    broken.x509_authorities.push(X509Authority {
        der: vec![1, 2, 3],
        tainted: false,
    });
    assert_invalid(store.create_bundle(broken.clone()).await, "bundle");
    assert_invalid(store.set_bundle(broken.clone()).await, "bundle");
    assert_invalid(store.append_bundle(broken).await, "bundle");
    assert_eq!(store.count_bundles().await.expect("count"), 1);
}

/// Paging over bundles in trust-domain order, and counting.
pub async fn bundle_list_paging_and_count(store: Arc<dyn DataStore>) {
    let cert = ca_cert(2090);
    let names = [
        "g.org", "a.org", "f.org", "b.org", "e.org", "c.org", "d.org",
    ];
    for name in names {
        store
            .create_bundle(bundle(name, &[&cert]))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let result = store.list_bundles(Some(&page)).await.expect("list");
        assert!(result.items.len() <= 3);
        seen.extend(result.items.into_iter().map(|b| b.trust_domain.to_string()));
        match result.next_token {
            Some(token) => page.token = Some(token),
            None => break,
        }
    }
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(store.list_bundles(None).await.expect("list").items.len(), 7);
    assert_eq!(store.count_bundles().await.expect("count"), 7);
}

/// Only masked fields change; the sequence number only when masked.
pub async fn bundle_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let stored = store
        .create_bundle(full_bundle("example.org"))
        .await
        .expect("create");
    let mut change = full_bundle("example.org");
    change.refresh_hint = 60;
    change.sequence_number = 99;
    let mask = BundleMask {
        refresh_hint: true,
        ..BundleMask::default()
    };
    let updated = store
        .update_bundle(change.clone(), &mask)
        .await
        .expect("update");
    let mut expected = stored.clone();
    expected.refresh_hint = 60;
    assert_eq!(updated, expected);
    assert_eq!(
        store.fetch_bundle(&td("example.org")).await.expect("fetch"),
        Some(expected)
    );
    let updated = store
        .update_bundle(change.clone(), &BundleMask::ALL)
        .await
        .expect("update");
    assert_eq!(updated, change);
    assert_not_found(
        store
            .update_bundle(full_bundle("none.org"), &BundleMask::ALL)
            .await,
        ObjectKind::Bundle,
    );
}

/// Set creates a missing bundle and replaces an existing one.
pub async fn bundle_set_replaces_or_creates(store: Arc<dyn DataStore>) {
    let first = full_bundle("example.org");
    assert_eq!(store.set_bundle(first.clone()).await.expect("set"), first);
    let second = full_bundle("example.org");
    store.set_bundle(second.clone()).await.expect("set");
    assert_eq!(
        store.fetch_bundle(&td("example.org")).await.expect("fetch"),
        Some(second)
    );
    assert_eq!(store.count_bundles().await.expect("count"), 1);
}

/// Append creates a missing bundle, adds only new authorities, and bumps the sequence
/// number only when something was added.
pub async fn bundle_append_merges_or_creates(store: Arc<dyn DataStore>) {
    let cert1 = ca_cert(2090);
    let cert2 = ca_cert(2091);
    let created = store
        .append_bundle(bundle("example.org", &[&cert1]))
        .await
        .expect("append to nothing");
    assert_eq!(created.x509_authorities.len(), 1);
    let mut more = bundle("example.org", &[&cert1, &cert2]);
    more.jwt_authorities = vec![jwt_authority("k1", 0)];
    let merged = store.append_bundle(more.clone()).await.expect("append");
    assert_eq!(merged.x509_authorities.len(), 2);
    assert_eq!(merged.jwt_authorities.len(), 1);
    assert_eq!(merged.sequence_number, created.sequence_number + 1);
    let again = store.append_bundle(more).await.expect("append again");
    assert_eq!(
        again, merged,
        "appending known authorities changed the bundle"
    );
    assert_eq!(
        store.fetch_bundle(&td("example.org")).await.expect("fetch"),
        Some(merged)
    );
}

async fn federated_fixture(store: &Arc<dyn DataStore>) -> Vec<sigil_types::RegistrationEntry> {
    store
        .create_bundle(bundle("fed.org", &[&ca_cert(2090)]))
        .await
        .expect("create bundle");
    let mut both = entry("/both", "a", &["unix:uid:1"]);
    both.federates_with = vec![td("fed.org"), td("keep.org")];
    let mut only = entry("/only", "a", &["unix:uid:2"]);
    only.federates_with = vec![td("fed.org")];
    let unrelated = entry("/unrelated", "a", &["unix:uid:3"]);
    store
        .create_entries(vec![both, only, unrelated])
        .await
        .expect("create entries")
}

/// Restrict refuses while entries federate with the trust domain, changing nothing.
pub async fn bundle_delete_restrict_refuses_while_federated(store: Arc<dyn DataStore>) {
    let entries = federated_fixture(&store).await;
    let result = store
        .delete_bundle(&td("fed.org"), DeleteMode::Restrict)
        .await;
    assert!(
        matches!(&result, Err(Error::BundleInUse { entries: 2, trust_domain }) if *trust_domain == td("fed.org")),
        "got {result:?}"
    );
    assert!(
        store
            .fetch_bundle(&td("fed.org"))
            .await
            .expect("fetch")
            .is_some()
    );
    for e in &entries {
        assert_eq!(
            store.fetch_entry(&e.id).await.expect("fetch").as_ref(),
            Some(e)
        );
    }
    // Once nothing federates with it, Restrict deletes.
    for e in &entries {
        store.delete_entry(&e.id).await.expect("delete entry");
    }
    store
        .delete_bundle(&td("fed.org"), DeleteMode::Restrict)
        .await
        .expect("delete");
    assert_eq!(
        store.fetch_bundle(&td("fed.org")).await.expect("fetch"),
        None
    );
}

/// Delete removes the bundle and the entries that federate with it.
pub async fn bundle_delete_delete_removes_federated_entries(store: Arc<dyn DataStore>) {
    let entries = federated_fixture(&store).await;
    store
        .delete_bundle(&td("fed.org"), DeleteMode::Delete)
        .await
        .expect("delete");
    assert_eq!(
        store.fetch_bundle(&td("fed.org")).await.expect("fetch"),
        None
    );
    assert_eq!(
        store.fetch_entry(&entries[0].id).await.expect("fetch"),
        None
    );
    assert_eq!(
        store.fetch_entry(&entries[1].id).await.expect("fetch"),
        None
    );
    assert_eq!(
        store
            .fetch_entry(&entries[2].id)
            .await
            .expect("fetch")
            .as_ref(),
        Some(&entries[2])
    );
    assert_eq!(
        store
            .count_entries(&EntryFilter::default())
            .await
            .expect("count"),
        1
    );
}

/// Dissociate removes the bundle and the trust domain from entries, which stay.
pub async fn bundle_delete_dissociate_keeps_entries(store: Arc<dyn DataStore>) {
    let entries = federated_fixture(&store).await;
    store
        .delete_bundle(&td("fed.org"), DeleteMode::Dissociate)
        .await
        .expect("delete");
    assert_eq!(
        store.fetch_bundle(&td("fed.org")).await.expect("fetch"),
        None
    );
    let both = store
        .fetch_entry(&entries[0].id)
        .await
        .expect("fetch")
        .expect("entry kept");
    assert_eq!(both.federates_with, vec![td("keep.org")]);
    assert_eq!(both.revision_number, entries[0].revision_number + 1);
    let only = store
        .fetch_entry(&entries[1].id)
        .await
        .expect("fetch")
        .expect("entry kept");
    assert!(only.federates_with.is_empty());
    assert_eq!(
        store
            .fetch_entry(&entries[2].id)
            .await
            .expect("fetch")
            .as_ref(),
        Some(&entries[2]),
        "an unrelated entry changed"
    );
}

/// Deleting an absent bundle is NotFound, in every mode.
pub async fn bundle_delete_missing_is_not_found(store: Arc<dyn DataStore>) {
    for mode in [
        DeleteMode::Restrict,
        DeleteMode::Delete,
        DeleteMode::Dissociate,
    ] {
        assert_not_found(
            store.delete_bundle(&td("none.org"), mode).await,
            ObjectKind::Bundle,
        );
    }
}

/// Prune drops expired authorities, reports whether it changed anything, and never drops the
/// last X.509 authority.
pub async fn bundle_prune_removes_expired_authorities(store: Arc<dyn DataStore>) {
    let old = ca_cert(2001);
    let current = ca_cert(2090);
    let mut b = bundle("example.org", &[&old, &current]);
    b.jwt_authorities = vec![
        jwt_authority("expired", jan1(2001)),
        jwt_authority("forever", 0),
        jwt_authority("valid", jan1(2090)),
    ];
    store.create_bundle(b.clone()).await.expect("create");
    assert!(
        store
            .prune_bundle(&td("example.org"), jan1(2020))
            .await
            .expect("prune")
    );
    let pruned = store
        .fetch_bundle(&td("example.org"))
        .await
        .expect("fetch")
        .expect("bundle exists");
    assert_eq!(pruned.x509_authorities.len(), 1);
    assert_eq!(pruned.x509_authorities[0].der, current);
    let kids: Vec<&str> = pruned
        .jwt_authorities
        .iter()
        .map(|a| a.key_id.as_str())
        .collect();
    assert_eq!(kids, ["forever", "valid"]);
    assert_eq!(pruned.sequence_number, b.sequence_number + 1);
    assert!(
        !store
            .prune_bundle(&td("example.org"), jan1(2020))
            .await
            .expect("prune again")
    );

    let all_old = bundle("old.org", &[&old]);
    store.create_bundle(all_old.clone()).await.expect("create");
    assert!(
        !store
            .prune_bundle(&td("old.org"), jan1(2020))
            .await
            .expect("prune")
    );
    assert_eq!(
        store.fetch_bundle(&td("old.org")).await.expect("fetch"),
        Some(all_old),
        "pruning removed the last X.509 authority"
    );
    assert_not_found(
        store.prune_bundle(&td("none.org"), jan1(2020)).await,
        ObjectKind::Bundle,
    );
}
