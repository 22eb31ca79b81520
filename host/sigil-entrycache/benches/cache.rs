//! Entry cache benchmark: loads N entries and M agents from a SQLite file into the cache, then
//! measures the load time, the memory per cached entry, `authorized_entries` for an agent with
//! 1,000 entries, and how long an entry change takes to become visible through `sync_once`.
//! For comparison it first times the store alone: paging with `list_entries` (how the cache
//! loaded before `scan_entries`) and the `scan_entries` scan the cache load runs.
//!
//! ```text
//! SIGIL_BENCH_ENTRIES=1000000 SIGIL_BENCH_DB=/tmp/entrycache-1m.sqlite3 \
//!     cargo bench -p sigil-entrycache --bench cache
//! ```
//!
//! Environment: `SIGIL_BENCH_ENTRIES` (1,000,000), `SIGIL_BENCH_AGENTS` (10,000),
//! `SIGIL_BENCH_DB` (a SQLite file, reused when it already holds the same data set; a
//! temporary file by default). Data: agent 0 has selectors `node:hot` and `node:0` and is
//! authorized for exactly 1,000 entries: 400 parented to it, 400 parented to the node alias
//! `/alias/hot` (selector `node:hot`), and 200 parented to 200 of its direct entries. The other
//! entries are spread round-robin over agents 1..M, with selectors `k8s:ns:ns-⌊i/10⌋` and
//! `k8s:sa:sa-i`. Memory is the growth of the resident set (`/proc/self/statm`) over the
//! load, divided by the entry count.
#![expect(
    clippy::expect_used,
    reason = "benchmark data is generated and always valid"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sigil_entrycache::{CacheConfig, EntryCache};
use sigil_store::{DataStore, EntryFilter, PageRequest};
use sigil_types::{AttestedAgent, RegistrationEntry, Selector, SpiffeId, TrustDomain};

const HOT_DIRECT: u64 = 400;
const HOT_ALIASED: u64 = 400;
const HOT_NESTED: u64 = 200;
const HOT_TOTAL: u64 = HOT_DIRECT + HOT_ALIASED + HOT_NESTED;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn id(path: &str) -> SpiffeId {
    format!("spiffe://example.org{path}")
        .parse()
        .expect("SPIFFE ID")
}

fn sel(s: &str) -> Selector {
    s.parse().expect("selector")
}

fn agent_id(n: u64) -> SpiffeId {
    id(&format!("/spire/agent/k8s_psat/node-{n}"))
}

fn agent(n: u64) -> AttestedAgent {
    let mut selectors = vec![sel(&format!("node:{n}"))];
    if n == 0 {
        selectors.push(sel("node:hot"));
    }
    AttestedAgent {
        spiffe_id: agent_id(n),
        attestation_type: "k8s_psat".into(),
        cert_serial_number: n.to_string(),
        cert_not_after: 2_000_000_000,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors,
        banned: false,
        can_reattest: false,
        agent_version: String::new(),
    }
}

/// Entry `i` of the data set (see the module docs). Entry `HOT_TOTAL` is the alias.
fn entry(i: u64, agents: u64) -> RegistrationEntry {
    let workload = |parent: SpiffeId| {
        RegistrationEntry::new(
            id(&format!("/workload/{i}")),
            parent,
            vec![
                sel(&format!("k8s:ns:ns-{}", i / 10)),
                sel(&format!("k8s:sa:sa-{i}")),
            ],
        )
    };
    if i < HOT_DIRECT {
        workload(agent_id(0))
    } else if i < HOT_DIRECT + HOT_ALIASED {
        workload(id("/alias/hot"))
    } else if i < HOT_TOTAL {
        workload(id(&format!("/workload/{}", i - HOT_DIRECT - HOT_ALIASED)))
    } else if i == HOT_TOTAL {
        RegistrationEntry::new(id("/alias/hot"), id("/spire/server"), vec![sel("node:hot")])
    } else {
        workload(agent_id(1 + i % (agents - 1).max(1)))
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .expect("resident field")
        .parse()
        .expect("a number");
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn build(store: &Arc<dyn DataStore>, entries: u64, agents: u64) {
    if store
        .count_entries(&EntryFilter::default())
        .await
        .expect("count")
        == entries
    {
        println!("reusing the data set in the database");
        return;
    }
    let start = Instant::now();
    for n in 0..agents {
        store.create_agent(agent(n)).await.expect("create agent");
    }
    let mut i = 0;
    while i < entries {
        let end = (i + 5000).min(entries);
        store
            .create_entries((i..end).map(|n| entry(n, agents)).collect())
            .await
            .expect("create entries");
        i = end;
    }
    println!(
        "built {entries} entries and {agents} agents in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let entries = env_u64("SIGIL_BENCH_ENTRIES", 1_000_000).max(HOT_TOTAL + 1);
    let agents = env_u64("SIGIL_BENCH_AGENTS", 10_000).max(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _tempdir;
    let path = match std::env::var("SIGIL_BENCH_DB") {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("entrycache.sqlite3");
            _tempdir = dir;
            path
        }
    };
    println!(
        "data set: {entries} entries, {agents} agents, SQLite file {}",
        path.display()
    );
    let td = TrustDomain::new("example.org").expect("trust domain");

    let (store, cache, load_time, rss_growth) = runtime.block_on(async {
        let store = sigil_store::sqlite::open(&path).await.expect("open SQLite");
        build(&store, entries, agents).await;
        // For comparison: listing by entry ID, page by page, as the cache used to load.
        let start = Instant::now();
        let mut page = PageRequest::first(CacheConfig::default().page_size);
        let mut listed = 0;
        loop {
            let items = store
                .list_entries(&EntryFilter::default(), Some(&page))
                .await
                .expect("list entries");
            listed += items.items.len();
            match items.next_token {
                Some(token) => page.token = Some(token),
                None => break,
            }
        }
        println!(
            "store paging alone: {listed} entries in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        // The store's share of the load: the same scan, without the cache.
        let start = Instant::now();
        let mut page = PageRequest::first(CacheConfig::default().page_size);
        let mut scanned = 0;
        loop {
            let items = store.scan_entries(&page).await.expect("scan entries");
            scanned += items.items.len();
            match items.next_token {
                Some(token) => page.token = Some(token),
                None => break,
            }
        }
        println!(
            "store scan alone: {scanned} entries in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        let rss_before = rss_bytes();
        let start = Instant::now();
        let cache = EntryCache::load(&*store, &td, CacheConfig::default())
            .await
            .expect("load the cache");
        let load_time = start.elapsed();
        let rss_growth = rss_bytes().saturating_sub(rss_before);
        (store, cache, load_time, rss_growth)
    });
    assert_eq!(cache.entry_count() as u64, entries);
    println!(
        "cache load: {:.2} s ({:.0} entries/s)",
        load_time.as_secs_f64(),
        entries as f64 / load_time.as_secs_f64()
    );
    println!(
        "memory: RSS grew {:.1} MiB over the load: {:.0} bytes per cached entry",
        rss_growth as f64 / (1024.0 * 1024.0),
        rss_growth as f64 / entries as f64
    );

    let hot = agent_id(0);
    assert_eq!(cache.authorized_entries(&hot).len() as u64, HOT_TOTAL);
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            let found = cache.authorized_entries(&hot);
            let elapsed = start.elapsed();
            assert_eq!(found.len() as u64, HOT_TOTAL);
            elapsed
        })
        .collect();
    samples.sort();
    println!(
        "authorized_entries ({HOT_TOTAL} entries): p50 {:.3} ms, p99 {:.3} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99))
    );
    let deep = id(&format!("/workload/{}", HOT_TOTAL - 1));
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let start = Instant::now();
            let found = cache.authorized_entry(&hot, &deep);
            let elapsed = start.elapsed();
            assert!(found.is_some());
            elapsed
        })
        .collect();
    samples.sort();
    println!(
        "authorized_entry (CSR check, worst case): p50 {:.3} ms, p99 {:.3} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99))
    );

    // Change visibility: create an entry, sync, find it.
    let (mut visible, mut syncs) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for n in 0..50 {
            let change = RegistrationEntry::new(
                id(&format!("/bench/change/{}/{n}", std::process::id())),
                agent_id(1),
                vec![sel("unix:uid:0")],
            );
            let created = Instant::now();
            let stored = store.create_entry(change).await.expect("create");
            let sync = Instant::now();
            cache.sync_once(&*store).await.expect("sync");
            syncs.push(sync.elapsed());
            assert!(cache.entry(&stored.id).is_some());
            visible.push(created.elapsed());
            store.delete_entry(&stored.id).await.expect("delete");
            cache.sync_once(&*store).await.expect("sync");
        }
    });
    visible.sort();
    syncs.sort();
    println!(
        "entry change visible: sync_once p50 {:.3} ms; create + sync_once p50 {:.3} ms",
        ms(percentile(&syncs, 0.5)),
        ms(percentile(&visible, 0.5))
    );

    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("authorized_entries/1000", |b| {
        b.iter(|| cache.authorized_entries(&hot));
    });
    criterion.bench_function("authorized_entry/csr_check", |b| {
        b.iter(|| cache.authorized_entry(&hot, &deep));
    });
    criterion.final_summary();
}
