//! The entry cache against real datastores: SQLite (in memory and a file shared by two
//! handles) and PostgreSQL (`DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`;
//! each case in a schema of its own, dropped afterwards; without `DATABASE_URL` the case
//! fails). Out-of-order commits are simulated by a source that hides chosen events.
#![expect(
    clippy::expect_used,
    reason = "test fixtures: a failed setup step fails the case"
)]

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_entrycache::{CacheConfig, CacheSource, Changes, EntryCache, Revision, run_follower};
use sigil_store::{
    AgentFilter, AgentMask, DataStore, EntryFilter, EntryMask, Event, EventId, Page, PageRequest,
    Result,
};
use sigil_testkit::postgres::Schema;
use sigil_types::{AttestedAgent, EntryId, RegistrationEntry, SpiffeId, TrustDomain};

// === Fixtures ===

fn td() -> TrustDomain {
    TrustDomain::new("example.org").expect("trust domain")
}

fn id(path: &str) -> SpiffeId {
    format!("spiffe://example.org{path}")
        .parse()
        .expect("SPIFFE ID")
}

fn agent_id(name: &str) -> SpiffeId {
    id(&format!("/spire/agent/x/{name}"))
}

fn entry(path: &str, parent: &SpiffeId, selectors: &[&str]) -> RegistrationEntry {
    RegistrationEntry::new(
        id(path),
        parent.clone(),
        selectors
            .iter()
            .map(|s| s.parse().expect("selector"))
            .collect(),
    )
}

fn agent(name: &str, selectors: &[&str]) -> AttestedAgent {
    AttestedAgent {
        spiffe_id: agent_id(name),
        attestation_type: "x".into(),
        cert_serial_number: "1".into(),
        cert_not_after: 2_000_000_000,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors: selectors
            .iter()
            .map(|s| s.parse().expect("selector"))
            .collect(),
        banned: false,
        can_reattest: false,
        agent_version: String::new(),
    }
}

fn paths(entries: &[Arc<RegistrationEntry>]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| e.spiffe_id.path().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn sqlite() -> Arc<dyn DataStore> {
    sigil_store::sqlite::open_in_memory()
        .await
        .expect("open SQLite in memory")
}

async fn load<S: CacheSource + ?Sized>(source: &S) -> Arc<EntryCache> {
    EntryCache::load(source, &td(), CacheConfig::default())
        .await
        .expect("load the cache")
}

/// Agents `a` (node:a, zone:1) and `b` (node:b); alias `/alias` on zone:1 with child `/z`;
/// `/w` under a with descendant `/w/d`; `/v` under b.
async fn populate(store: &dyn DataStore) {
    store
        .create_agent(agent("a", &["node:a", "zone:1"]))
        .await
        .expect("agent a");
    store
        .create_agent(agent("b", &["node:b"]))
        .await
        .expect("agent b");
    let server = id("/spire/server");
    store
        .create_entries(vec![
            entry("/alias", &server, &["zone:1"]),
            entry("/z", &id("/alias"), &["unix:uid:1"]),
            entry("/w", &agent_id("a"), &["unix:uid:2"]),
            entry("/w/d", &id("/w"), &["unix:uid:3"]),
            entry("/v", &agent_id("b"), &["unix:uid:4"]),
        ])
        .await
        .expect("entries");
}

// === Authorization ===

#[tokio::test]
async fn authorization_follows_spire_rules() {
    let store = sqlite().await;
    populate(&*store).await;
    let cache = load(&*store).await;
    assert_eq!(cache.entry_count(), 5);
    assert_eq!(cache.agent_count(), 2);
    assert_eq!(
        paths(&cache.authorized_entries(&agent_id("a"))),
        set(&["/z", "/w", "/w/d"])
    );
    assert_eq!(
        paths(&cache.authorized_entries(&agent_id("b"))),
        set(&["/v"])
    );
    assert!(cache.authorized_entries(&agent_id("unknown")).is_empty());
    assert!(
        cache
            .authorized_entry(&agent_id("a"), &id("/w/d"))
            .is_some()
    );
    assert!(cache.authorized_entry(&agent_id("a"), &id("/v")).is_none());

    // Banning through the store takes effect after a sync.
    let mut banned = agent("a", &["node:a", "zone:1"]);
    banned.banned = true;
    let mask = AgentMask {
        banned: true,
        ..AgentMask::default()
    };
    store.update_agent(banned, &mask).await.expect("ban");
    cache.sync_once(&*store).await.expect("sync");
    assert!(cache.authorized_entries(&agent_id("a")).is_empty());
    assert!(cache.agent(&agent_id("a")).expect("agent a").banned);
}

#[tokio::test]
async fn a_load_in_small_pages_caches_every_entry_as_stored() {
    let store = sqlite().await;
    populate(&*store).await;
    let mut extra = entry("/x", &agent_id("b"), &["unix:uid:9", "unix:gid:9"]);
    extra.dns_names = vec!["x.example.org".into()];
    extra.hint = "x".into();
    store.create_entry(extra).await.expect("entry /x");
    let config = CacheConfig {
        page_size: 2,
        ..CacheConfig::default()
    };
    let cache = EntryCache::load(&*store, &td(), config)
        .await
        .expect("load the cache");
    let stored = store
        .list_entries(&EntryFilter::default(), None)
        .await
        .expect("list")
        .items;
    assert_eq!(stored.len(), 6);
    assert_eq!(cache.entry_count(), 6);
    for e in &stored {
        assert_eq!(cache.entry(&e.id).as_deref(), Some(e), "entry {}", e.id);
    }
    assert_eq!(
        paths(&cache.authorized_entries(&agent_id("a"))),
        set(&["/z", "/w", "/w/d"])
    );
    assert_eq!(
        paths(&cache.authorized_entries(&agent_id("b"))),
        set(&["/v", "/x"])
    );
}

#[tokio::test]
async fn cycles_end() {
    let store = sqlite().await;
    populate(&*store).await;
    store
        .create_entries(vec![
            entry("/c1", &id("/c2"), &["unix:uid:5"]),
            entry("/c2", &id("/c1"), &["unix:uid:6"]),
            entry("/c1", &id("/w"), &["unix:uid:7"]),
        ])
        .await
        .expect("cycle");
    let cache = load(&*store).await;
    let found = cache.authorized_entries(&agent_id("a"));
    assert_eq!(found.len(), 6, "each entry once: {:?}", paths(&found));
    assert_eq!(paths(&found), set(&["/z", "/w", "/w/d", "/c1", "/c2"]));
}

// === Incremental changes ===

fn delta(changes: Changes) -> (BTreeSet<String>, BTreeSet<EntryId>, Revision) {
    match changes {
        Changes::Delta {
            revision,
            upserted,
            deleted,
        } => (paths(&upserted), deleted.into_iter().collect(), revision),
        full @ Changes::Full { .. } => panic!("expected a delta, got {full:?}"),
    }
}

#[tokio::test]
async fn changes_after_load_reach_changes_since() {
    let store = sqlite().await;
    populate(&*store).await;
    let cache = load(&*store).await;
    let a = agent_id("a");
    let r0 = match cache.changes_since(&a, Revision { epoch: 0, seq: 0 }) {
        Changes::Full { revision, entries } => {
            assert_eq!(entries.len(), 3);
            revision
        }
        delta => panic!("a first sync is full, got {delta:?}"),
    };
    let mut revisions = cache.subscribe();

    let created = store
        .create_entry(entry("/new", &a, &["unix:uid:8"]))
        .await
        .expect("create");
    let mut w = store
        .list_entries(
            &EntryFilter {
                by_spiffe_id: Some(id("/w")),
                ..EntryFilter::default()
            },
            None,
        )
        .await
        .expect("list")
        .items
        .remove(0);
    w.hint = "updated".into();
    store
        .update_entry(
            w,
            &EntryMask {
                hint: true,
                ..EntryMask::default()
            },
        )
        .await
        .expect("update");
    let z = cache.authorized_entry(&a, &id("/z")).expect("z");
    store.delete_entry(&z.id).await.expect("delete");

    let report = cache.sync_once(&*store).await.expect("sync");
    assert_eq!(report.events, 3);
    assert_eq!(report.changes, 3);
    assert!(revisions.has_changed().expect("sender alive"));
    assert_eq!(*revisions.borrow_and_update(), report.revision);

    let (upserted, deleted, r1) = delta(cache.changes_since(&a, r0));
    assert_eq!(upserted, set(&["/new", "/w"]));
    assert_eq!(deleted, BTreeSet::from([z.id.clone()]));
    assert_eq!(r1, cache.revision());
    assert!(cache.entry(&created.id).is_some());
    assert!(cache.entry(&z.id).is_none());
    // Nothing new since r1.
    let (upserted, deleted, _) = delta(cache.changes_since(&a, r1));
    assert!(upserted.is_empty() && deleted.is_empty());
    // A sync without events changes nothing.
    assert_eq!(cache.sync_once(&*store).await.expect("sync").changes, 0);
}

#[tokio::test]
async fn a_backlog_is_applied_in_small_batches() {
    let store = sqlite().await;
    populate(&*store).await;
    let config = CacheConfig {
        event_batch: 2,
        ..CacheConfig::default()
    };
    let cache = EntryCache::load(&*store, &td(), config)
        .await
        .expect("load");
    let batch = (0..7)
        .map(|i| entry(&format!("/batch/{i}"), &agent_id("b"), &["unix:uid:1"]))
        .collect();
    store.create_entries(batch).await.expect("batch");
    let report = cache.sync_once(&*store).await.expect("sync");
    assert_eq!((report.events, report.changes, report.gaps), (7, 7, 0));
    assert_eq!(cache.authorized_entries(&agent_id("b")).len(), 8);
    assert_eq!(cache.sync_once(&*store).await.expect("sync").events, 0);
}

// === Gaps ===

/// A store whose chosen events are invisible, as an uncommitted PostgreSQL transaction's are.
struct Hiding {
    store: Arc<dyn DataStore>,
    hidden: Mutex<HashSet<EventId>>,
}

impl Hiding {
    fn hide(&self, id: EventId) {
        self.hidden.lock().expect("lock").insert(id);
    }
    fn reveal_all(&self) {
        self.hidden.lock().expect("lock").clear();
    }
}

impl CacheSource for Hiding {
    async fn scan_entries(&self, p: &PageRequest) -> Result<Page<RegistrationEntry>> {
        self.store.scan_entries(p).await
    }
    async fn count_entries(&self, f: &EntryFilter) -> Result<u64> {
        self.store.count_entries(f).await
    }
    async fn list_agents(
        &self,
        f: &AgentFilter,
        p: Option<&PageRequest>,
    ) -> Result<Page<AttestedAgent>> {
        self.store.list_agents(f, p).await
    }
    async fn fetch_entry(&self, id: &EntryId) -> Result<Option<RegistrationEntry>> {
        self.store.fetch_entry(id).await
    }
    async fn fetch_agent(&self, id: &SpiffeId) -> Result<Option<AttestedAgent>> {
        self.store.fetch_agent(id).await
    }
    async fn list_events(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        let events = self.store.list_events(after, limit).await?;
        let hidden = self.hidden.lock().expect("lock").clone();
        Ok(events
            .into_iter()
            .filter(|e| !hidden.contains(&e.id))
            .collect())
    }
    async fn latest_event_id(&self) -> Result<EventId> {
        self.store.latest_event_id().await
    }
}

/// Creates `/late` and `/early` in that order and hides the first one's event; returns the
/// late entry.
async fn out_of_order(source: &Hiding) -> RegistrationEntry {
    let late = source
        .store
        .create_entry(entry("/late", &agent_id("a"), &["unix:uid:9"]))
        .await
        .expect("late");
    source.hide(source.store.latest_event_id().await.expect("latest"));
    source
        .store
        .create_entry(entry("/early", &agent_id("a"), &["unix:uid:10"]))
        .await
        .expect("early");
    late
}

#[tokio::test]
async fn a_late_commit_below_the_cursor_is_applied() {
    let source = Hiding {
        store: sqlite().await,
        hidden: Mutex::default(),
    };
    populate(&*source.store).await;
    let cache = load(&source).await;
    let late = out_of_order(&source).await;

    let report = cache.sync_once(&source).await.expect("sync");
    assert_eq!((report.events, report.gaps), (1, 1));
    assert!(
        cache
            .authorized_entry(&agent_id("a"), &id("/early"))
            .is_some()
    );
    assert!(
        cache.entry(&late.id).is_none(),
        "its event is not visible yet"
    );

    source.reveal_all();
    let report = cache.sync_once(&source).await.expect("sync");
    assert_eq!((report.events, report.gaps), (1, 0));
    assert!(cache.entry(&late.id).is_some(), "the gap was read again");
}

#[tokio::test]
async fn a_gap_is_given_up_after_its_timeout_and_polls() {
    let source = Hiding {
        store: sqlite().await,
        hidden: Mutex::default(),
    };
    let config = CacheConfig {
        gap_timeout: Duration::ZERO,
        gap_polls: 2,
        ..CacheConfig::default()
    };
    let cache = EntryCache::load(&source, &td(), config)
        .await
        .expect("load");
    let late = out_of_order(&source).await;
    assert_eq!(cache.sync_once(&source).await.expect("sync").gaps, 1);
    assert_eq!(cache.sync_once(&source).await.expect("sync").gaps, 0);
    source.reveal_all();
    cache.sync_once(&source).await.expect("sync");
    assert!(
        cache.entry(&late.id).is_none(),
        "a given-up gap is not read again"
    );
}

/// A transaction that took its event ID before the load and commits after it: the load does
/// not see its row, and its ID is below the load position.
#[tokio::test]
async fn gaps_below_the_load_position_are_waited_for() {
    let source = Hiding {
        store: sqlite().await,
        hidden: Mutex::default(),
    };
    let late = out_of_order(&source).await;
    // Remove the row (with a hidden event) so the load cannot see it either.
    source
        .store
        .delete_entry(&late.id)
        .await
        .expect("remove the row");
    source.hide(source.store.latest_event_id().await.expect("latest"));
    let cache = load(&source).await;
    assert!(cache.entry(&late.id).is_none());
    // The row "commits": it is back, and the two old event IDs become visible, while the
    // recreation's own event (above the cursor) stays hidden.
    source
        .store
        .create_entry(late.clone())
        .await
        .expect("recreate");
    let recreated = source.store.latest_event_id().await.expect("latest");
    source
        .hidden
        .lock()
        .expect("lock")
        .retain(|&id| id == recreated);
    cache.sync_once(&source).await.expect("sync");
    assert!(
        cache.entry(&late.id).is_some(),
        "IDs missing below the load position are read again"
    );
}

// === Follower ===

#[tokio::test]
async fn follower_applies_changes_when_poked() {
    let store = sqlite().await;
    populate(&*store).await;
    let cache = load(&*store).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn(run_follower(
        Arc::clone(&cache),
        Arc::clone(&store),
        Duration::from_secs(3600),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut revisions = cache.subscribe();
    // Let the first (immediate) tick pass.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .create_entry(entry("/poked", &agent_id("b"), &["unix:uid:11"]))
        .await
        .expect("create");
    cache.poke();
    tokio::time::timeout(Duration::from_secs(5), revisions.changed())
        .await
        .expect("a sync within 5 s of the poke")
        .expect("cache alive");
    assert!(
        cache
            .authorized_entry(&agent_id("b"), &id("/poked"))
            .is_some()
    );
    stop.send(()).expect("follower running");
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("follower stops")
        .expect("follower task");
}

// === Two handles on one database ===

async fn two_handles_share_one_database(a: Arc<dyn DataStore>, b: Arc<dyn DataStore>) {
    a.create_agent(agent("n", &["node:n"]))
        .await
        .expect("agent");
    let cache = load(&*b).await;
    assert!(cache.authorized_entries(&agent_id("n")).is_empty());
    let created = a
        .create_entry(entry("/shared", &agent_id("n"), &["unix:uid:12"]))
        .await
        .expect("create via A");
    cache.sync_once(&*b).await.expect("sync via B");
    let found = cache.authorized_entries(&agent_id("n"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);
    a.delete_entry(&created.id).await.expect("delete via A");
    cache.sync_once(&*b).await.expect("sync via B");
    assert!(cache.authorized_entries(&agent_id("n")).is_empty());
}

#[tokio::test]
async fn sqlite_file_two_handles() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let a = sigil_store::sqlite::open_in_dir(dir.path())
        .await
        .expect("handle A");
    let b = sigil_store::sqlite::open_in_dir(dir.path())
        .await
        .expect("handle B");
    two_handles_share_one_database(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_handles() {
    let schema = Schema::create("sigil_test");
    let store_url = schema.store_url();
    let outcome = tokio::spawn(async move {
        let a = sigil_store::postgres::connect_with_pool_size(&store_url, 2)
            .await
            .expect("handle A");
        let b = sigil_store::postgres::connect_with_pool_size(&store_url, 2)
            .await
            .expect("handle B");
        two_handles_share_one_database(a, b).await;
    })
    .await;
    schema.drop_now().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
