//! The change-event log.

use std::sync::Arc;

use sigil_types::{EntryId, JoinToken};

use super::support::{agent, bundle, ca_cert, entry, td};
use crate::{AgentMask, DataStore, DeleteMode, EntryMask, Event, EventKind, EventOp};

async fn events_after(store: &Arc<dyn DataStore>, after: i64) -> Vec<Event> {
    let events = store.list_events(after, 1000).await.expect("list events");
    for pair in events.windows(2) {
        assert!(pair[0].id < pair[1].id, "events out of order: {events:?}");
    }
    events
}

fn ops(events: &[Event]) -> Vec<(EventKind, String, EventOp)> {
    events
        .iter()
        .map(|e| (e.kind, e.object_id.clone(), e.op))
        .collect()
}

/// Create, update and delete of an entry append created, updated, deleted, in order.
pub async fn events_follow_entry_writes_in_order(store: Arc<dyn DataStore>) {
    let start = store.latest_event_id().await.expect("latest");
    let before = crate::sql::now();
    let created = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let mask = EntryMask {
        hint: true,
        ..EntryMask::default()
    };
    store
        .update_entry(created.clone(), &mask)
        .await
        .expect("update");
    store.delete_entry(&created.id).await.expect("delete");
    let after = crate::sql::now();
    let events = events_after(&store, start).await;
    let id = created.id.to_string();
    assert_eq!(
        ops(&events),
        [
            (EventKind::Entry, id.clone(), EventOp::Created),
            (EventKind::Entry, id.clone(), EventOp::Updated),
            (EventKind::Entry, id, EventOp::Deleted),
        ]
    );
    for e in &events {
        assert!((before..=after).contains(&e.created_at), "event time {e:?}");
    }
    assert_eq!(
        store.latest_event_id().await.expect("latest"),
        events.last().map_or(0, |e| e.id)
    );
}

/// Create, update and delete of an agent append created, updated, deleted, in order.
pub async fn events_follow_agent_writes_in_order(store: Arc<dyn DataStore>) {
    let start = store.latest_event_id().await.expect("latest");
    let a = store
        .create_agent(agent("n1", "join_token", &["unix:uid:0"]))
        .await
        .expect("create");
    store
        .update_agent(a.clone(), &AgentMask::ALL)
        .await
        .expect("update");
    store.delete_agent(&a.spiffe_id).await.expect("delete");
    let id = a.spiffe_id.to_string();
    assert_eq!(
        ops(&events_after(&store, start).await),
        [
            (EventKind::Agent, id.clone(), EventOp::Created),
            (EventKind::Agent, id.clone(), EventOp::Updated),
            (EventKind::Agent, id, EventOp::Deleted),
        ]
    );
}

/// Batch creates, prunes and bundle deletes record one event per entry they touch.
pub async fn events_follow_batch_prune_and_bundle_deletes(store: Arc<dyn DataStore>) {
    store
        .create_bundle(bundle("fed.org", &[&ca_cert(2090)]))
        .await
        .expect("bundle");
    store
        .create_bundle(bundle("dis.org", &[&ca_cert(2090)]))
        .await
        .expect("bundle");
    let mut expiring = entry("/expiring", "a", &["unix:uid:1"]);
    expiring.expires_at = Some(10);
    let mut federated = entry("/federated", "a", &["unix:uid:2"]);
    federated.federates_with = vec![td("fed.org")];
    let mut dissociated = entry("/dissociated", "a", &["unix:uid:3"]);
    dissociated.federates_with = vec![td("dis.org")];
    let batch = vec![expiring, federated, dissociated];
    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();

    let start = store.latest_event_id().await.expect("latest");
    store.create_entries(batch).await.expect("batch");
    store.prune_entries(11).await.expect("prune");
    store
        .delete_bundle(&td("fed.org"), DeleteMode::Delete)
        .await
        .expect("delete bundle");
    store
        .delete_bundle(&td("dis.org"), DeleteMode::Dissociate)
        .await
        .expect("dissociate bundle");
    let events = events_after(&store, start).await;
    assert_eq!(
        ops(&events),
        [
            (EventKind::Entry, ids[0].clone(), EventOp::Created),
            (EventKind::Entry, ids[1].clone(), EventOp::Created),
            (EventKind::Entry, ids[2].clone(), EventOp::Created),
            (EventKind::Entry, ids[0].clone(), EventOp::Deleted),
            (EventKind::Entry, ids[1].clone(), EventOp::Deleted),
            (EventKind::Entry, ids[2].clone(), EventOp::Updated),
        ]
    );
}

/// Writes that fail append nothing; writes to other kinds of object append nothing.
pub async fn events_not_written_by_failed_writes(store: Arc<dyn DataStore>) {
    let stored = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let a = store
        .create_agent(agent("n1", "join_token", &[]))
        .await
        .expect("create agent");
    let start = store.latest_event_id().await.expect("latest");

    let _ = store
        .create_entry(entry("/web", "a", &["unix:uid:0"]))
        .await
        .expect_err("duplicate");
    let _ = store
        .create_entry(entry("/bad", "a", &[]))
        .await
        .expect_err("invalid");
    let mut invalid = stored.clone();
    invalid.selectors.clear();
    let _ = store
        .update_entry(invalid, &EntryMask::ALL)
        .await
        .expect_err("invalid update");
    let _ = store
        .update_entry(entry("/ghost", "a", &["unix:uid:0"]), &EntryMask::ALL)
        .await
        .expect_err("missing");
    let missing = EntryId::new("missing").expect("entry ID");
    let _ = store.delete_entry(&missing).await.expect_err("missing");
    let _ = store
        .create_agent(a.clone())
        .await
        .expect_err("duplicate agent");
    let _ = store
        .update_agent(agent("ghost", "join_token", &[]), &AgentMask::ALL)
        .await
        .expect_err("missing agent");

    store
        .create_bundle(bundle("example.org", &[&ca_cert(2090)]))
        .await
        .expect("bundle");
    store
        .create_join_token(JoinToken {
            token: "t".into(),
            expires_at: 10,
        })
        .await
        .expect("token");
    store.set_ca_journal("j", vec![1]).await.expect("journal");
    assert_eq!(store.latest_event_id().await.expect("latest"), start);
    assert!(events_after(&store, start).await.is_empty());
}

/// `after` and `limit` select a window; pruning removes old events; IDs are never reused.
pub async fn events_list_after_limit_and_prune(store: Arc<dyn DataStore>) {
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            store
                .create_entry(entry(&format!("/w/{i}"), "a", &["unix:uid:0"]))
                .await
                .expect("create"),
        );
    }
    let all = events_after(&store, 0).await;
    assert_eq!(all.len(), 5);
    let window = store.list_events(all[0].id, 2).await.expect("list");
    assert_eq!(window, all[1..3].to_vec());
    let latest = store.latest_event_id().await.expect("latest");
    assert_eq!(latest, all[4].id);
    assert!(
        store
            .list_events(latest, 10)
            .await
            .expect("list")
            .is_empty()
    );

    let now = crate::sql::now();
    assert_eq!(store.prune_events(now - 3600).await.expect("prune"), 0);
    assert_eq!(store.prune_events(now + 10).await.expect("prune"), 5);
    assert!(events_after(&store, 0).await.is_empty());

    store
        .create_entry(entry("/after-prune", "a", &["unix:uid:0"]))
        .await
        .expect("create");
    let fresh = events_after(&store, 0).await;
    assert_eq!(fresh.len(), 1);
    assert!(
        fresh[0].id > latest,
        "event ID {} reused after pruning (latest was {latest})",
        fresh[0].id
    );
}
