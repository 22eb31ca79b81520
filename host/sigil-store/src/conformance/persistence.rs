//! Cases for backends whose data outlives a store: reopening, migrations.

use std::sync::Arc;

use sigil_types::{BundleEndpointProfile, FederationRelationship, JoinToken};

use super::Fixture;
use super::support::{agent, bundle, ca_cert, entry, td};
use crate::{AgentFilter, EntryFilter, Error, SCHEMA_VERSION};

/// Everything written is there after the store is dropped and the database reopened.
pub async fn reopen_keeps_data(fixture: Arc<dyn Fixture>) {
    let store = fixture.open().await.expect("open");
    let mut e = entry("/web", "a", &["unix:uid:0", "k8s:ns:web"]);
    e.federates_with = vec![td("other.org")];
    e.dns_names = vec!["web.example.org".into()];
    let e = store.create_entry(e).await.expect("create entry");
    let a = store
        .create_agent(agent("n1", "join_token", &["unix:uid:0"]))
        .await
        .expect("create agent");
    let b = store
        .create_bundle(bundle("example.org", &[&ca_cert(2090)]))
        .await
        .expect("create bundle");
    let token = JoinToken {
        token: "s3cret".into(),
        expires_at: 4_000_000_000,
    };
    store.create_join_token(token.clone()).await.expect("token");
    store
        .set_ca_journal("server-1", vec![1, 2, 3])
        .await
        .expect("journal");
    let r = FederationRelationship {
        trust_domain: td("other.org"),
        bundle_endpoint_url: "https://other.org/bundle".into(),
        profile: BundleEndpointProfile::HttpsWeb,
        trust_domain_bundle: None,
    };
    store
        .create_federation_relationship(r.clone())
        .await
        .expect("relationship");
    let events = store.list_events(0, 100).await.expect("events");
    drop(store);

    let store = fixture.open().await.expect("reopen");
    assert_eq!(store.fetch_entry(&e.id).await.expect("fetch"), Some(e));
    assert_eq!(
        store.fetch_agent(&a.spiffe_id).await.expect("fetch"),
        Some(a)
    );
    assert_eq!(
        store.fetch_bundle(&td("example.org")).await.expect("fetch"),
        Some(b)
    );
    assert_eq!(
        store.fetch_join_token("s3cret").await.expect("fetch"),
        Some(token)
    );
    assert_eq!(
        store.fetch_ca_journal("server-1").await.expect("fetch"),
        Some(vec![1, 2, 3])
    );
    assert_eq!(
        store
            .fetch_federation_relationship(&td("other.org"))
            .await
            .expect("fetch"),
        Some(r)
    );
    assert_eq!(store.list_events(0, 100).await.expect("events"), events);
}

/// Opening an up-to-date database again changes neither its version nor its data.
pub async fn migrations_are_idempotent_on_reopen(fixture: Arc<dyn Fixture>) {
    let store = fixture.open().await.expect("open");
    assert_eq!(fixture.schema_version().await, SCHEMA_VERSION);
    store
        .create_entries(
            (0..10)
                .map(|i| entry(&format!("/w/{i}"), "a", &["unix:uid:0"]))
                .collect(),
        )
        .await
        .expect("create");
    drop(store);
    for _ in 0..3 {
        let store = fixture.open().await.expect("reopen");
        assert_eq!(fixture.schema_version().await, SCHEMA_VERSION);
        assert_eq!(
            store
                .count_entries(&EntryFilter::default())
                .await
                .expect("count"),
            10
        );
        assert_eq!(
            store
                .count_agents(&AgentFilter::default())
                .await
                .expect("count"),
            0
        );
    }
}

/// A database whose schema is newer than this build is refused with a clear message, and
/// left untouched.
pub async fn schema_too_new_is_refused(fixture: Arc<dyn Fixture>) {
    let store = fixture.open().await.expect("open");
    store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    drop(store);
    fixture.set_schema_version(SCHEMA_VERSION + 1).await;
    match fixture.open().await {
        Err(e @ Error::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
            let message = e.to_string();
            assert!(
                message.contains("newer") && message.contains(&found.to_string()),
                "unclear message: {message}"
            );
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a database with a newer schema was opened"),
    }
    assert_eq!(
        fixture.schema_version().await,
        SCHEMA_VERSION + 1,
        "version was changed"
    );
    fixture.set_schema_version(SCHEMA_VERSION).await;
    let store = fixture.open().await.expect("open at the supported version");
    assert_eq!(
        store
            .count_entries(&EntryFilter::default())
            .await
            .expect("count"),
        1
    );
}
