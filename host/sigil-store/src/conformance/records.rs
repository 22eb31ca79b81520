//! Join tokens, CA journals and federation relationships.

use std::sync::Arc;

use sigil_types::{BundleEndpointProfile, FederationRelationship, JoinToken};

use super::support::{
    assert_already_exists, assert_invalid, assert_not_found, bundle, ca_cert, id, td,
};
use crate::{DataStore, Error, FederationRelationshipMask, ObjectKind, PageRequest};

fn token(secret: &str, expires_at: i64) -> JoinToken {
    JoinToken {
        token: secret.to_owned(),
        expires_at,
    }
}

/// Create, fetch, delete; a duplicate is refused; deleting twice is NotFound.
pub async fn join_token_create_fetch_delete(store: Arc<dyn DataStore>) {
    store
        .create_join_token(token("s3cret", 1000))
        .await
        .expect("create");
    assert_eq!(
        store.fetch_join_token("s3cret").await.expect("fetch"),
        Some(token("s3cret", 1000))
    );
    assert_eq!(store.fetch_join_token("other").await.expect("fetch"), None);
    assert_already_exists(
        store.create_join_token(token("s3cret", 2000)).await,
        ObjectKind::JoinToken,
    );
    assert_invalid(store.create_join_token(token("", 2000)).await, "token");
    store.delete_join_token("s3cret").await.expect("delete");
    assert_eq!(store.fetch_join_token("s3cret").await.expect("fetch"), None);
    assert_not_found(
        store.delete_join_token("s3cret").await,
        ObjectKind::JoinToken,
    );
}

/// A token can be taken once, including when several callers race for it.
pub async fn join_token_take_is_single_use(store: Arc<dyn DataStore>) {
    store
        .create_join_token(token("once", 1000))
        .await
        .expect("create");
    assert_eq!(
        store.take_join_token("once", 1000).await.expect("take"),
        token("once", 1000),
        "a token is valid up to and including its expiry second"
    );
    assert_not_found(
        store.take_join_token("once", 500).await,
        ObjectKind::JoinToken,
    );
    assert_not_found(
        store.take_join_token("never", 500).await,
        ObjectKind::JoinToken,
    );

    store
        .create_join_token(token("race", 1000))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.take_join_token("race", 10).await
        }));
    }
    let mut taken = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => taken += 1,
            Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(taken, 1, "a join token was used more than once");
}

/// An expired token is refused with its own error, and deleted all the same.
pub async fn join_token_take_expired_is_refused_and_deleted(store: Arc<dyn DataStore>) {
    store
        .create_join_token(token("old", 1000))
        .await
        .expect("create");
    let result = store.take_join_token("old", 1001).await;
    assert!(
        matches!(result, Err(Error::JoinTokenExpired { expired_at: 1000 })),
        "got {result:?}"
    );
    assert_eq!(store.fetch_join_token("old").await.expect("fetch"), None);
    assert_not_found(store.take_join_token("old", 0).await, ObjectKind::JoinToken);
}

/// Prune deletes tokens that expired strictly before the time.
pub async fn join_token_prune_removes_expired(store: Arc<dyn DataStore>) {
    for (secret, expires_at) in [("a", 100), ("b", 200), ("c", 300)] {
        store
            .create_join_token(token(secret, expires_at))
            .await
            .expect("create");
    }
    assert_eq!(store.prune_join_tokens(200).await.expect("prune"), 1);
    assert_eq!(store.fetch_join_token("a").await.expect("fetch"), None);
    assert!(store.fetch_join_token("b").await.expect("fetch").is_some());
    assert_eq!(store.prune_join_tokens(1000).await.expect("prune"), 2);
}

/// A CA journal is stored, replaced, and kept apart from other journals.
pub async fn ca_journal_set_fetch_replace(store: Arc<dyn DataStore>) {
    assert_eq!(
        store.fetch_ca_journal("server-1").await.expect("fetch"),
        None
    );
    store
        .set_ca_journal("server-1", vec![0, 1, 2, 255])
        .await
        .expect("set");
    store
        .set_ca_journal("server-2", vec![9])
        .await
        .expect("set");
    assert_eq!(
        store.fetch_ca_journal("server-1").await.expect("fetch"),
        Some(vec![0, 1, 2, 255])
    );
    store
        .set_ca_journal("server-1", Vec::new())
        .await
        .expect("replace");
    assert_eq!(
        store.fetch_ca_journal("server-1").await.expect("fetch"),
        Some(Vec::new())
    );
    assert_eq!(
        store.fetch_ca_journal("server-2").await.expect("fetch"),
        Some(vec![9])
    );
    assert_invalid(store.set_ca_journal("", vec![1]).await, "name");
}

fn relationship(trust_domain: &str) -> FederationRelationship {
    FederationRelationship {
        trust_domain: td(trust_domain),
        bundle_endpoint_url: format!("https://{trust_domain}/bundle"),
        profile: BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id("/bundle-endpoint"),
        },
        trust_domain_bundle: None,
    }
}

/// Create, fetch, delete; duplicate and invalid relationships are refused.
pub async fn federation_relationship_create_fetch_delete(store: Arc<dyn DataStore>) {
    let given = relationship("other.org");
    assert_eq!(
        store
            .create_federation_relationship(given.clone())
            .await
            .expect("create"),
        given
    );
    assert_eq!(
        store
            .fetch_federation_relationship(&td("other.org"))
            .await
            .expect("fetch"),
        Some(given.clone())
    );
    assert_already_exists(
        store.create_federation_relationship(given).await,
        ObjectKind::FederationRelationship,
    );
    let mut insecure = relationship("plain.org");
    insecure.bundle_endpoint_url = "http://plain.org/bundle".into();
    assert_invalid(
        store.create_federation_relationship(insecure).await,
        "bundle_endpoint_url",
    );
    let mut wrong_bundle = relationship("wrong.org");
    wrong_bundle.trust_domain_bundle = Some(bundle("other.org", &[&ca_cert(2090)]));
    assert_invalid(
        store.create_federation_relationship(wrong_bundle).await,
        "trust_domain_bundle",
    );
    store
        .delete_federation_relationship(&td("other.org"))
        .await
        .expect("delete");
    assert_eq!(
        store
            .fetch_federation_relationship(&td("other.org"))
            .await
            .expect("fetch"),
        None
    );
    assert_not_found(
        store.delete_federation_relationship(&td("other.org")).await,
        ObjectKind::FederationRelationship,
    );
}

/// A relationship's bundle is the trust domain's bundle: stored with it, returned with it,
/// and kept when the relationship is deleted.
pub async fn federation_relationship_stores_its_bundle(store: Arc<dyn DataStore>) {
    let mut given = relationship("other.org");
    given.profile = BundleEndpointProfile::HttpsWeb;
    let b = bundle("other.org", &[&ca_cert(2090)]);
    given.trust_domain_bundle = Some(b.clone());
    store
        .create_federation_relationship(given.clone())
        .await
        .expect("create");
    assert_eq!(
        store.fetch_bundle(&td("other.org")).await.expect("fetch"),
        Some(b.clone())
    );
    assert_eq!(
        store
            .fetch_federation_relationship(&td("other.org"))
            .await
            .expect("fetch"),
        Some(given)
    );
    store
        .delete_federation_relationship(&td("other.org"))
        .await
        .expect("delete");
    assert_eq!(
        store.fetch_bundle(&td("other.org")).await.expect("fetch"),
        Some(b)
    );
}

/// Only masked fields change; NotFound for an absent relationship.
pub async fn federation_relationship_update_changes_only_masked_fields(store: Arc<dyn DataStore>) {
    let stored = store
        .create_federation_relationship(relationship("other.org"))
        .await
        .expect("create");
    let b = bundle("other.org", &[&ca_cert(2090)]);
    let change = FederationRelationship {
        trust_domain: td("other.org"),
        bundle_endpoint_url: "https://new.other.org/bundle".into(),
        profile: BundleEndpointProfile::HttpsWeb,
        trust_domain_bundle: Some(b.clone()),
    };
    let mask = FederationRelationshipMask {
        bundle_endpoint_url: true,
        ..FederationRelationshipMask::default()
    };
    let updated = store
        .update_federation_relationship(change.clone(), &mask)
        .await
        .expect("update");
    let expected = FederationRelationship {
        bundle_endpoint_url: change.bundle_endpoint_url.clone(),
        ..stored.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(
        store.fetch_bundle(&td("other.org")).await.expect("fetch"),
        None
    );
    let updated = store
        .update_federation_relationship(change.clone(), &FederationRelationshipMask::ALL)
        .await
        .expect("update");
    assert_eq!(updated, change);
    assert_eq!(
        store
            .fetch_federation_relationship(&td("other.org"))
            .await
            .expect("fetch"),
        Some(change)
    );
    assert_not_found(
        store
            .update_federation_relationship(
                relationship("none.org"),
                &FederationRelationshipMask::ALL,
            )
            .await,
        ObjectKind::FederationRelationship,
    );
}

/// Paging over relationships in trust-domain order.
pub async fn federation_relationship_list_paging(store: Arc<dyn DataStore>) {
    let names = ["d.org", "a.org", "c.org", "e.org", "b.org"];
    for name in names {
        store
            .create_federation_relationship(relationship(name))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store
            .list_federation_relationships(Some(&page))
            .await
            .expect("list");
        assert!(result.items.len() <= 2);
        seen.extend(result.items.into_iter().map(|r| r.trust_domain.to_string()));
        match result.next_token {
            Some(token) => page.token = Some(token),
            None => break,
        }
    }
    assert_eq!(seen, ["a.org", "b.org", "c.org", "d.org", "e.org"]);
    assert_eq!(
        store
            .list_federation_relationships(None)
            .await
            .expect("list")
            .items
            .len(),
        5
    );
}
