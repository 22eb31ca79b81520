//! The sync loop on tokio's paused clock against the stand-in server (`tests/stand_in.rs`):
//! agent SVID renewal at half-life, workload X509-SVID rotation before expiry, and backoff
//! and recovery while the server is down, asserted on state (the published snapshot, the
//! stored agent SVID, the stand-in's call counts) instead of log lines. A whole SVID
//! lifetime runs in milliseconds.

mod stand_in;

use std::sync::Arc;
use std::time::Duration;

use sigil_clock::{SystemClock, TokioClock};
use sigil_types::{Clock, EntryId, RegistrationEntry, Selector, SpiffeId};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::stand_in::{StandIn, State, agent_id, trust_domain};
use super::*;
use crate::keys;

#[test]
fn backoff_doubles_up_to_the_ceiling() {
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(4), Duration::from_secs(8));
    assert_eq!(backoff(50), MAX_BACKOFF);
}

#[tokio::test(start_paused = true)]
async fn the_agent_svid_is_renewed_at_half_life_and_syncing_goes_on_with_it() {
    let agent = Agent::start(State {
        agent_ttl: Duration::from_secs(60),
        ..state()
    })
    .await;
    let (not_before, not_after) = leaf_validity(&agent.first_agent_chain);
    let half_life = not_before + (not_after - not_before) / 2;
    assert!(
        half_life > agent.clock.now() + 10,
        "the test needs room before half-life"
    );

    // Syncs go on every SYNC_INTERVAL with the first SVID until half-life.
    agent.sleep_until_clock(half_life - 1).await;
    {
        let state = agent.stand_in.state();
        assert_eq!(state.renewals, 0, "renewed before half-life");
        assert!(state.entry_fetches >= 4, "{}", state.entry_fetches);
        assert_eq!(
            state.last_client_cert.as_ref(),
            agent.first_agent_chain.first()
        );
    }

    // The first sync past half-life renews it, once; the next syncs use the new SVID.
    agent
        .sleep_until_clock(half_life + 2 * SYNC_INTERVAL.as_secs() as i64)
        .await;
    let stored = agent.stored_agent_chain().expect("a stored agent SVID");
    assert_ne!(
        stored, agent.first_agent_chain,
        "the stored SVID was renewed"
    );
    let (renewed_from, renewed_until) = leaf_validity(&stored);
    assert!(renewed_until > not_after, "the renewed SVID lives longer");
    assert!(renewed_from >= not_before);
    {
        let state = agent.stand_in.state();
        assert_eq!(state.renewals, 1, "renewed once");
        assert_eq!(state.failed_calls, 0);
        assert_eq!(
            state.last_client_cert.as_ref(),
            stored.first(),
            "syncs after the renewal present the renewed SVID"
        );
    }
    let snapshot = agent.snapshot();
    assert_eq!(snapshot.agent_expires_at, renewed_until);
    assert!(snapshot.readiness(agent.clock.now()).is_ok());
    assert_eq!(snapshot.svids.len(), 1, "the workload keeps its SVID");
    agent.stop().await.expect("the loop ends cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_reattestable_agent_renews_by_attesting_again() {
    // The built-in join_token plugin stands for any node attestor: the stand-in takes its
    // payload without checking it.
    let plugins =
        sigil_plugins::PluginHost::new(sigil_plugins::HostConfig::default()).expect("plugin host");
    let attestor = plugins
        .load_node_attestor_agent(
            &trust_domain(),
            &sigil_plugins::PluginSpec::builtin("join_token", "join_token = \"t\""),
        )
        .expect("join_token plugin");
    let agent = Agent::start_with(
        State {
            agent_ttl: Duration::from_secs(60),
            ..state()
        },
        Some(attestor),
    )
    .await;
    let (not_before, not_after) = leaf_validity(&agent.first_agent_chain);
    let half_life = not_before + (not_after - not_before) / 2;
    agent.sleep_until_clock(half_life - 1).await;
    assert_eq!(agent.stand_in.state().attestations, 0);
    agent
        .sleep_until_clock(half_life + SYNC_INTERVAL.as_secs() as i64)
        .await;
    {
        let state = agent.stand_in.state();
        assert_eq!(state.attestations, 1, "renewed by attesting again");
        assert_eq!(state.renewals, 0, "not by RenewAgent");
    }
    let stored = agent.stored_agent_chain().expect("a stored agent SVID");
    assert_ne!(
        stored, agent.first_agent_chain,
        "the stored SVID was renewed"
    );
    agent.stop().await.expect("the loop ends cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_workload_svid_is_rotated_after_half_life_before_it_expires() {
    let agent = Agent::start(State {
        svid_ttl: Duration::from_secs(100),
        ..state()
    })
    .await;
    agent.sleep_for(Duration::from_secs(1)).await;
    let first = agent.snapshot().svids.get("e0").cloned().expect("an SVID");
    let (not_before, not_after) = leaf_validity(&first.svid.cert_chain);
    assert_eq!(first.svid.expires_at, not_after);
    // Renewal at half-life plus a jitter of up to a tenth of the lifetime.
    let lifetime = not_after - not_before;
    assert!(
        (not_before + lifetime / 2..not_before + lifetime / 2 + lifetime / 10)
            .contains(&first.renew_at),
        "renew_at {} for {not_before}..{not_after}",
        first.renew_at
    );

    // Until renew_at every sync keeps it.
    agent.sleep_until_clock(first.renew_at - 1).await;
    assert_eq!(agent.stand_in.state().minted, 1);
    assert_eq!(agent.snapshot().svids.get("e0"), Some(&first));

    // The first sync from renew_at mints a new one, while the old one is still valid.
    agent
        .sleep_until_clock(first.renew_at + SYNC_INTERVAL.as_secs() as i64)
        .await;
    assert!(agent.clock.now() < first.svid.expires_at);
    assert_eq!(agent.stand_in.state().minted, 2);
    let second = agent.snapshot().svids.get("e0").cloned().expect("an SVID");
    assert_ne!(second.svid.cert_chain, first.svid.cert_chain, "rotated");
    assert_ne!(
        second.svid.private_key, first.svid.private_key,
        "with a new key"
    );
    assert!(second.svid.expires_at > first.svid.expires_at);
    assert!(second.renew_at > agent.clock.now());
    agent.stop().await.expect("the loop ends cleanly");
}

#[tokio::test(start_paused = true)]
async fn while_the_server_is_down_the_cache_is_served_and_syncs_back_off_then_recover() {
    let agent = Agent::start(state()).await;
    agent.sleep_until(Duration::from_millis(500)).await;
    let cached = agent.snapshot();
    assert!(cached.svids.contains_key("e0"));
    agent.stand_in.state().unavailable = true;

    // The sync at 5 s fails; the retries come 1, 2, 4 and 8 s after each failure.
    for (at, failures) in [(5.5, 1), (6.5, 2), (7.5, 2), (8.5, 3), (12.5, 4), (20.5, 5)] {
        agent.sleep_until(Duration::from_secs_f64(at)).await;
        assert_eq!(
            agent.stand_in.state().failed_calls,
            failures,
            "attempts by {at} s"
        );
        // Meanwhile the last snapshot stays published, and the agent stays ready.
        let published = agent.snapshot();
        assert!(Arc::ptr_eq(&published, &cached), "the cache is kept");
        assert!(published.readiness(agent.clock.now()).is_ok());
    }

    // The server comes back with a new entry: the next retry (16 s after the fifth
    // failure) syncs it, and syncs are SYNC_INTERVAL apart again.
    {
        let mut state = agent.stand_in.state();
        state.unavailable = false;
        state.entries.push(entry(1));
    }
    agent.sleep_until(Duration::from_secs_f64(35.5)).await;
    assert!(
        Arc::ptr_eq(&agent.snapshot(), &cached),
        "no attempt before 36 s"
    );
    agent.sleep_until(Duration::from_secs_f64(36.5)).await;
    let synced = agent.snapshot();
    assert_eq!(synced.entries.len(), 2);
    assert!(synced.svids.contains_key("e1"));
    assert_eq!(synced.svids.get("e0"), cached.svids.get("e0"));
    let fetches = agent.stand_in.state().entry_fetches;
    agent.sleep_until(Duration::from_secs_f64(40.5)).await;
    assert_eq!(agent.stand_in.state().entry_fetches, fetches);
    agent.sleep_until(Duration::from_secs_f64(41.5)).await;
    assert_eq!(agent.stand_in.state().entry_fetches, fetches + 1);
    assert_eq!(agent.stand_in.state().failed_calls, 5);
    agent.stop().await.expect("the loop ends cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_refused_agent_that_cannot_attest_again_removes_its_svid_and_ends_the_loop() {
    let agent = Agent::start(state()).await;
    agent.sleep_until(Duration::from_millis(500)).await;
    assert!(agent.stored_agent_chain().is_some());
    agent.stand_in.state().refusal = Some("agent is not attested or no longer valid".into());
    agent.sleep_until(Duration::from_secs(6)).await;
    assert!(agent.task.is_finished(), "the loop ended at the next sync");
    let ended = agent.task.await.expect("the loop did not panic");
    assert!(
        matches!(&ended, Err(AgentError::Evicted { reason, .. }) if reason.contains("no longer valid")),
        "{ended:?}"
    );
    let data = DataDir::open(agent.data_dir.path()).expect("data dir");
    assert!(data.load_agent_svid().expect("readable").is_none());
}

// === set-up ===

/// A sync loop running against the stand-in on a paused clock.
struct Agent {
    stand_in: StandIn,
    clock: Arc<dyn Clock>,
    /// When the test started, on tokio's clock and on the injected clock.
    started: Instant,
    start_unix: i64,
    data_dir: tempfile::TempDir,
    cache: watch::Receiver<Arc<Snapshot>>,
    first_agent_chain: Vec<Vec<u8>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
}

/// One entry (`e0`), agent and workload SVIDs of a day.
fn state() -> State {
    State {
        entries: vec![entry(0)],
        agent_ttl: Duration::from_secs(86_400),
        svid_ttl: Duration::from_secs(86_400),
        ..State::default()
    }
}

/// Entry `e<i>` for `spiffe://example.org/w<i>`.
fn entry(i: usize) -> RegistrationEntry {
    let id = |path: &str| SpiffeId::new(&trust_domain(), path).expect("SPIFFE ID");
    let selector = Selector::new("unix", &format!("uid:{i}")).expect("selector");
    let mut entry = RegistrationEntry::new(id(&format!("/w{i}")), agent_id(), vec![selector]);
    entry.id = EntryId::new(&format!("e{i}")).expect("entry ID");
    entry
}

impl Agent {
    /// The stand-in and a sync loop with an agent SVID it minted (as attestation would).
    async fn start(state: State) -> Agent {
        Agent::start_with(state, None).await
    }

    /// The same, with `attestor` for a reattestable agent.
    async fn start_with(state: State, attestor: Option<NodeAttestorAgent>) -> Agent {
        let started = Instant::now();
        let start_unix = SystemClock.now();
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start_unix));
        let agent_ttl = state.agent_ttl;
        let stand_in = StandIn::start(clock.clone(), state).await;
        let key = keys::generate(KeyType::EcP256).expect("agent key");
        let csr = keys::csr(&key).expect("CSR");
        let svid = stand_in.mint(&csr, &agent_id(), agent_ttl);
        let agent = AgentSvid {
            spiffe_id: agent_id(),
            chain: svid.cert_chain,
            key: keys::private_der(&key),
            reattestable: attestor.is_some(),
        };
        let data_dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::open(data_dir.path()).expect("data dir");
        data.store_agent_svid(&agent).expect("store");
        let server_id = SpiffeId::new(&trust_domain(), "/spire/server").expect("server ID");
        let client = ServerClient::in_memory(stand_in.dial.clone(), server_id).expect("client");
        let bundle = stand_in.bundle();
        client
            .set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))
            .expect("roots");
        client
            .set_identity(&agent.chain, &agent.key)
            .expect("identity");
        let (publish, cache) = watch::channel(Arc::new(Snapshot::default()));
        let first_agent_chain = agent.chain.clone();
        let syncer = Syncer {
            client,
            data,
            agent,
            key_type: KeyType::EcP256,
            publish,
            attestor,
            demand: X509Demand::new(100),
            clock: clock.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(syncer.run(async move {
            let _ = stopped.await;
        }));
        Agent {
            stand_in,
            clock,
            started,
            start_unix,
            data_dir,
            cache,
            first_agent_chain,
            stop,
            task,
        }
    }

    /// The published snapshot.
    fn snapshot(&self) -> Arc<Snapshot> {
        self.cache.borrow().clone()
    }

    /// The agent SVID's chain in the data directory.
    fn stored_agent_chain(&self) -> Option<Vec<Vec<u8>>> {
        let data = DataDir::open(self.data_dir.path()).expect("data dir");
        data.load_agent_svid()
            .expect("readable")
            .map(|svid| svid.chain)
    }

    /// Lets the paused clock run to `since_start` after the start.
    async fn sleep_until(&self, since_start: Duration) {
        tokio::time::sleep_until(self.started + since_start).await;
    }

    /// Lets the paused clock run for `duration`.
    async fn sleep_for(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Lets the paused clock run until the injected clock reads `unix` (plus half a second,
    /// clear of the syncs on whole seconds).
    async fn sleep_until_clock(&self, unix: i64) {
        let since_start = u64::try_from(unix - self.start_unix).expect("a time after the start");
        self.sleep_until(Duration::from_secs(since_start) + Duration::from_millis(500))
            .await;
    }

    /// Stops the loop; its result.
    async fn stop(self) -> Result<(), AgentError> {
        let _ = self.stop.send(());
        self.task.await.expect("the loop did not panic")
    }
}

/// A chain's leaf validity, Unix seconds.
fn leaf_validity(chain: &[Vec<u8>]) -> (i64, i64) {
    validity(chain.first().expect("a leaf")).expect("validity")
}
