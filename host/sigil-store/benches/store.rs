//! Datastore benchmark: bulk-loads N entries through the public API, then times listing by
//! one selector and by parent ID.
//!
//! ```text
//! cargo bench -p sigil-store --bench store -- --entries 1000000 --backend sqlite
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p sigil-store --bench store -- --entries 1000000 --backend postgres
//! ```
//!
//! Options: `--entries N` (100000), `--backend sqlite|postgres` (sqlite), `--queries N` (2000
//! per kind), `--chunk N` (entries per batch create, 1000), `--per-parent N` (entries per
//! agent, 10), `--path FILE` (SQLite file; a temporary one by default), `--keep` (do not drop
//! the PostgreSQL schema). Entry `i` has selectors `k8s:ns:ns-{i/10}` (shared by 10 entries)
//! and `k8s:sa:sa-{i}` (its own), so a lookup by one namespace selector returns 10 entries.
#![expect(
    clippy::expect_used,
    reason = "benchmark data is generated and always valid"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sigil_store::{DataStore, EntryFilter, MatchMode, SelectorMatch};
use sigil_testkit::postgres::Schema;
use sigil_types::{RegistrationEntry, Selector, SpiffeId};

struct Options {
    entries: u64,
    backend: String,
    queries: usize,
    chunk: u64,
    per_parent: u64,
    path: Option<String>,
    keep: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        entries: 100_000,
        backend: "sqlite".into(),
        queries: 2000,
        chunk: 1000,
        per_parent: 10,
        path: None,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--entries" => o.entries = value()?.parse()?,
            "--backend" => o.backend = value()?,
            "--queries" => o.queries = value()?.parse()?,
            "--chunk" => o.chunk = value()?.parse()?,
            "--per-parent" => o.per_parent = value()?.parse()?,
            "--path" => o.path = Some(value()?),
            "--keep" => o.keep = true,
            // `cargo bench` passes `--bench`; ignore it and other harness flags.
            _ => {}
        }
    }
    if o.chunk == 0 || o.per_parent == 0 || o.entries < 10 {
        bail!("--chunk and --per-parent must be positive, --entries at least 10");
    }
    Ok(o)
}

fn parent(o: &Options, i: u64) -> SpiffeId {
    format!(
        "spiffe://example.org/spire/agent/k8s_psat/node-{}",
        i / o.per_parent
    )
    .parse()
    .expect("parent ID")
}

fn namespace(i: u64) -> Selector {
    format!("k8s:ns:ns-{}", i / 10).parse().expect("selector")
}

fn entry(o: &Options, i: u64) -> RegistrationEntry {
    let sa: Selector = format!("k8s:sa:sa-{i}").parse().expect("selector");
    RegistrationEntry::new(
        format!("spiffe://example.org/workload/{i}")
            .parse()
            .expect("SPIFFE ID"),
        parent(o, i),
        vec![namespace(i), sa],
    )
}

/// xorshift64*: reproducible query keys without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn time_queries(
    store: &Arc<dyn DataStore>,
    label: &str,
    queries: usize,
    mut filter: impl FnMut() -> (EntryFilter, usize),
) -> anyhow::Result<()> {
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let (f, expected) = filter();
        let start = Instant::now();
        let page = store.list_entries(&f, None).await?;
        times.push(start.elapsed());
        if page.items.len() != expected {
            bail!(
                "{label}: expected {expected} entries, got {}",
                page.items.len()
            );
        }
    }
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "{label}: {queries} queries, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / queries as f64,
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let mut _tempdir = None;
    let mut pg_schema = None;
    let store: Arc<dyn DataStore> = match o.backend.as_str() {
        "sqlite" => {
            let path = match &o.path {
                Some(p) => std::path::PathBuf::from(p),
                None => {
                    let dir = tempfile::tempdir()?;
                    let path = dir.path().join(sigil_store::sqlite::DEFAULT_FILE_NAME);
                    _tempdir = Some(dir);
                    path
                }
            };
            println!("backend: sqlite, file {}", path.display());
            sigil_store::sqlite::open(&path).await?
        }
        "postgres" => {
            let schema = Schema::create("sigil_bench");
            println!("backend: postgres, schema {}", schema.name());
            let store = sigil_store::postgres::connect(&schema.store_url()).await?;
            pg_schema = Some(schema);
            store
        }
        other => bail!("unknown backend {other:?}: use sqlite or postgres"),
    };

    let start = Instant::now();
    let mut next_report = Duration::from_secs(30);
    let mut i = 0;
    while i < o.entries {
        let end = (i + o.chunk).min(o.entries);
        store
            .create_entries((i..end).map(|n| entry(&o, n)).collect())
            .await?;
        i = end;
        if start.elapsed() > next_report {
            println!(
                "  loaded {i} entries in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(30);
        }
    }
    let load = start.elapsed();
    println!(
        "load: {} entries in {:.1} s ({:.0} entries/s, chunks of {})",
        o.entries,
        load.as_secs_f64(),
        o.entries as f64 / load.as_secs_f64(),
        o.chunk
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let groups = o.entries / 10;
    let full_groups = groups; // entries is a multiple of 10 in practice; the last group may be short
    time_queries(&store, "list by one selector", o.queries, || {
        let g = rng.below(full_groups);
        let expected = (o.entries - g * 10).min(10) as usize;
        let filter = EntryFilter {
            by_selectors: Some(SelectorMatch {
                selectors: vec![namespace(g * 10)],
                mode: MatchMode::Superset,
            }),
            ..EntryFilter::default()
        };
        (filter, expected)
    })
    .await?;
    let parents = o.entries.div_ceil(o.per_parent);
    time_queries(&store, "list by parent ID", o.queries, || {
        let p = rng.below(parents);
        let expected = (o.entries - p * o.per_parent).min(o.per_parent) as usize;
        let filter = EntryFilter {
            by_parent_id: Some(parent(&o, p * o.per_parent)),
            ..EntryFilter::default()
        };
        (filter, expected)
    })
    .await?;

    if let Some(path) = o.path.as_ref().map(std::path::PathBuf::from).or_else(|| {
        _tempdir
            .as_ref()
            .map(|d| d.path().join(sigil_store::sqlite::DEFAULT_FILE_NAME))
    }) {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!("database file: {:.0} MiB", size as f64 / (1024.0 * 1024.0));
    }
    drop(store);
    if let Some(schema) = pg_schema {
        if o.keep {
            println!("kept schema {}", schema.keep());
        } else {
            schema.drop_now().await;
        }
    }
    Ok(())
}
