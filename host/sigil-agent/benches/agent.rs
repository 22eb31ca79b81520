//! The agent's targets (issue 5), against the real release `sigil-agent` binary as a process,
//! attested with a join token to an in-process server on loopback (SQLite), `unix` workload
//! attestor, memory key manager; the workload is this process.
//!
//! 1. **Latency**: FetchX509SVID's first response on a new connection (connect, HTTP/2
//!    handshake, the agent's workload attestation, first message), `--calls` times. Baseline,
//!    alternating with it: `grpc.health.v1.Health/Check` on a new connection to the same
//!    socket (a new connection without attestation).
//! 2. **SDS fan-out**: `--streams` `StreamSecrets` streams for `default` over `--connections`
//!    connections, each ACKed as Envoy does; an `entry update -hint` makes the agent mint and
//!    publish a new SVID at its next sync. Per rotation: the time from the agent's publication
//!    (its debug `cache updated` log line) to the last stream's receipt, and the spread from the
//!    first receipt to the last. Baseline: the same streams against `sigil_workload::serve`
//!    with `StaticIdentities` on a runtime of its own, publishing one rotation at a time.
//! 3. **RSS**: an agent with `--rss-entries` SVIDs cached and one with none, idle for `--idle`
//!    seconds after their first sync: `VmRSS`/`VmHWM`, then again after one FetchX509SVID,
//!    then after a restart on the same data dirs (plugins from the artifact cache); where the
//!    RSS is, from smaps, for the first run.
//! 4. **JWT-SVID cache RSS** (issue 11): `--jwt-calls` FetchJWTSVID calls, each with distinct
//!    audiences of the largest total size allowed (two of 4,096 bytes): the agent's `VmRSS`
//!    before, after 300 calls, after all of them (past `jwt_svid_cache_max_size`, 1000), and
//!    after `--idle` seconds. Before the bound, 300 calls with 1 MiB audiences took the
//!    agent from 60 to 1,102 MiB.
//!
//! ```text
//! cargo bench -p sigil-agent --bench agent [-- --calls 2000 --streams 1000 --connections 10
//!     --rounds 5 --rss-runs 3 --rss-entries 100 --idle 10 --jwt-calls 2000
//!     --skip latency,sds,rss,jwt]
//! ```

#![expect(
    clippy::expect_used,
    reason = "benchmark setup is fixed and always valid; a failure must stop the run"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use prost::Name;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sigil_proto::workload::{JwtsvidRequest, X509svidRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use common::{AGENT, Server, agent_conf, uds_channel, unix_now};

/// Only the sync loop logs at debug: its `cache updated` line is the publication time; the
/// rest stays at info as in production (no per-call debug line in the latency figures).
const AGENT_LOG_FILTER: &str = "info,sigil_agent::sync=debug";

struct Options {
    calls: usize,
    streams: usize,
    connections: usize,
    rounds: usize,
    rss_runs: usize,
    rss_entries: usize,
    idle: u64,
    jwt_calls: usize,
    skip: Vec<String>,
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let number = |name: &str, default: usize| {
            value(name)
                .map(|v| v.parse().expect("a number"))
                .unwrap_or(default)
        };
        Options {
            calls: number("--calls", 2000),
            streams: number("--streams", 1000),
            connections: number("--connections", 10),
            rounds: number("--rounds", 5),
            rss_runs: number("--rss-runs", 3),
            rss_entries: number("--rss-entries", 100),
            idle: u64::try_from(number("--idle", 10)).expect("seconds"),
            jwt_calls: number("--jwt-calls", 2000),
            skip: value("--skip")
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|s| s == part)
    }
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(options));
}

async fn run(options: Options) {
    println!("load average at start: {}", load_average());
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let bundle_pem = server.cli_out(&["bundle", "show"]).await;
    let bundle = dir.path().join("bootstrap.pem");
    std::fs::write(&bundle, &bundle_pem).expect("write bundle");
    let uid = std::fs::metadata("/proc/self").expect("proc").uid();
    let setup = Setup {
        server,
        bundle,
        uid,
        dir: dir.path().to_owned(),
    };

    if options.runs("latency") || options.runs("sds") {
        // The SDS rotation updates this entry: the CLI sends the whole entry (SPIFFE ID,
        // parent ID, selectors) as SPIRE's does, with a new hint.
        let (mut agent, entry_id) = setup.agent_with_entries("main", 1).await;
        let entry_id = entry_id.into_iter().next().expect("one entry");
        if options.runs("latency") {
            latency(&agent.socket, options.calls).await;
            println!("load average: {}", load_average());
        }
        if options.runs("sds") {
            sds_agent(&setup, &mut agent, &entry_id, &options).await;
            println!("load average: {}", load_average());
            agent.stop();
            sds_baseline(&setup.dir, &options).await;
            println!("load average: {}", load_average());
        }
        agent.stop();
    }
    if options.runs("rss") {
        rss(&setup, &options).await;
        println!("load average: {}", load_average());
    }
    if options.runs("jwt") {
        jwt_rss(&setup, &options).await;
        println!("load average at end: {}", load_average());
    }
}

// === set-up ===

struct Setup {
    server: Server,
    bundle: PathBuf,
    uid: u32,
    dir: PathBuf,
}

impl Setup {
    /// A new agent (own token, data dir and socket) with `count` entries for this process's
    /// uid, distinct SPIFFE IDs; returns once it has published its first sync with all of
    /// them.
    async fn agent_with_entries(&self, name: &str, count: usize) -> (AgentProcess, Vec<String>) {
        let token = self.server.token().await;
        let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let out = self
                .server
                .cli_out(&[
                    "entry",
                    "create",
                    "-spiffeID",
                    &format!("spiffe://example.org/{name}/workload-{i}"),
                    "-parentID",
                    &agent_id,
                    "-selector",
                    &format!("unix:uid:{}", self.uid),
                ])
                .await;
            let id = out
                .lines()
                .find_map(|l| l.strip_prefix("Entry ID"))
                .and_then(|l| l.split(':').nth(1))
                .expect("entry ID in the output")
                .trim()
                .to_owned();
            ids.push(id);
        }
        let agent = AgentProcess::start(self, name, &token);
        assert_eq!(agent.id, agent_id);
        agent.wait_for_sync(count).await;
        (agent, ids)
    }
}

/// The agent binary as a process, with its own directory, socket and log file.
struct AgentProcess {
    /// The agent's SPIFFE ID (from its join token).
    id: String,
    /// When this process was started (its log file may hold an earlier run's lines).
    started: SystemTime,
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl AgentProcess {
    fn start(setup: &Setup, name: &str, token: &str) -> AgentProcess {
        let dir = setup.dir.join(name);
        std::fs::create_dir_all(&dir).expect("agent dir");
        let log = dir.join("agent.log");
        let conf_text = agent_conf(
            &dir,
            setup.server.address.port(),
            &format!("trust_bundle_path = \"{}\"", setup.bundle.display()),
        )
        .replace(
            "log_level = \"INFO\"",
            &format!(
                "log_level = \"DEBUG\"\n    log_file = \"{}\"",
                log.display()
            ),
        );
        let conf = dir.join("agent.conf");
        std::fs::write(&conf, conf_text).expect("write config");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr file");
        let started = SystemTime::now();
        let child = Command::new(AGENT)
            .args(["run", "-config"])
            .arg(&conf)
            .args(["-joinToken", token])
            .env("SIGIL_LOG", AGENT_LOG_FILTER)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the agent");
        AgentProcess {
            id: format!("spiffe://example.org/spire/agent/join_token/{token}"),
            started,
            child,
            log,
            socket: dir.join("agent.sock"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every `cache updated` line: its time and `svids`.
    fn publications(&self) -> Vec<(SystemTime, usize)> {
        self.log()
            .lines()
            .filter(|l| l.contains("cache updated"))
            .filter_map(|l| {
                let at = parse_rfc3339(l.split_whitespace().next()?)?;
                let svids = l
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("svids="))?
                    .parse()
                    .ok()?;
                Some((at, svids))
            })
            .collect()
    }

    async fn wait_for_sync(&self, svids: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .publications()
                .iter()
                .any(|&(at, n)| n == svids && at >= self.started)
                && self.socket.exists()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no sync with {svids} SVIDs: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

// === 1. latency ===

async fn latency(socket: &Path, calls: usize) {
    // Warm-up: the plugin's instance pool, the agent's threads, this process's allocator.
    for _ in 0..100 {
        fetch_round_trip(socket).await;
        health_round_trip(socket).await;
    }
    let mut fetch = Vec::with_capacity(calls);
    let mut health = Vec::with_capacity(calls);
    let load = load_average();
    let started = Instant::now();
    for _ in 0..calls {
        fetch.push(fetch_round_trip(socket).await);
        health.push(health_round_trip(socket).await);
    }
    let elapsed = started.elapsed();
    let fetch = Percentiles::of(fetch);
    let health = Percentiles::of(health);
    println!(
        "\n## latency: {calls} new connections each, alternating ({:.1} s; load average before: {load})",
        elapsed.as_secs_f64()
    );
    println!("FetchX509SVID first response:  {fetch}");
    println!("Health/Check (baseline):       {health}");
    println!(
        "difference of p50 {:.3} ms, of p99 {:.3} ms",
        fetch.p50 - health.p50,
        fetch.p99 - health.p99
    );
}

/// New connection, FetchX509SVID with the security header, until the first message.
async fn fetch_round_trip(socket: &Path) -> Duration {
    let started = Instant::now();
    let mut client = SpiffeWorkloadApiClient::new(uds_channel(socket).await);
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("header"));
    let mut stream = client
        .fetch_x509svid(request)
        .await
        .expect("FetchX509SVID")
        .into_inner();
    let first = stream.message().await.expect("first response");
    let elapsed = started.elapsed();
    let first = first.expect("a response");
    assert_eq!(first.svids.len(), 1, "one SVID");
    elapsed
}

/// New connection, Health/Check.
async fn health_round_trip(socket: &Path) -> Duration {
    let started = Instant::now();
    let mut client = HealthClient::new(uds_channel(socket).await);
    let answer = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health/Check");
    let elapsed = started.elapsed();
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    elapsed
}

/// Percentiles in milliseconds (nearest rank).
#[derive(Clone, Copy)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1e3
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

// === 2. SDS fan-out ===

/// One response received by one stream: when, and whether its `default` secret differs from
/// the stream's previous one.
struct Receipt {
    at: SystemTime,
    fresh: bool,
}

/// The open streams: their receipts arrive on `receipts`.
struct Fleet {
    receipts: mpsc::UnboundedReceiver<Receipt>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    streams: usize,
}

impl Fleet {
    /// `streams` StreamSecrets for `default` over `connections` connections, opened one
    /// connection's worth at a time; returns once every stream has its first response (and
    /// has ACKed it).
    async fn open(socket: &Path, streams: usize, connections: usize) -> Fleet {
        let (tx, mut receipts) = mpsc::unbounded_channel();
        let mut tasks = Vec::with_capacity(streams);
        let per = streams.div_ceil(connections);
        let mut opened = 0;
        while opened < streams {
            let channel = uds_channel(socket).await;
            let wave = per.min(streams - opened);
            for i in 0..wave {
                tasks.push(tokio::spawn(envoy_stream(
                    opened + i,
                    channel.clone(),
                    tx.clone(),
                )));
            }
            for _ in 0..wave {
                let first = tokio::time::timeout(Duration::from_secs(60), receipts.recv())
                    .await
                    .expect("first responses in time")
                    .expect("a receipt");
                assert!(first.fresh);
            }
            opened += wave;
        }
        Fleet {
            receipts,
            tasks,
            streams,
        }
    }

    /// Waits until every stream has received a new `default` secret; the receipt times, and
    /// how many responses came without a change.
    async fn rotation(&mut self) -> (Vec<SystemTime>, usize) {
        let mut times = Vec::with_capacity(self.streams);
        let mut unchanged = 0;
        while times.len() < self.streams {
            let receipt = tokio::time::timeout(Duration::from_secs(60), self.receipts.recv())
                .await
                .expect("every stream rotated in time")
                .expect("a receipt");
            if receipt.fresh {
                times.push(receipt.at);
            } else {
                unchanged += 1;
            }
        }
        times.sort();
        (times, unchanged)
    }

    fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// One Envoy-like stream: first request for `default`, then an ACK (version and nonce of
/// the response) after each response.
async fn envoy_stream(
    index: usize,
    channel: tonic::transport::Channel,
    receipts: mpsc::UnboundedSender<Receipt>,
) {
    let mut client = SecretDiscoveryServiceClient::new(channel);
    let (requests, rx) = mpsc::channel(4);
    let first = DiscoveryRequest {
        node: Some(Node {
            id: format!("sidecar~10.0.0.1~bench-{index}"),
            cluster: "bench".into(),
            user_agent_name: "envoy".into(),
            ..Default::default()
        }),
        resource_names: vec!["default".into()],
        type_url: Secret::type_url(),
        ..Default::default()
    };
    requests.send(first).await.expect("first request");
    let mut responses = client
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .expect("StreamSecrets")
        .into_inner();
    let mut last: Option<Vec<u8>> = None;
    while let Ok(Some(response)) = responses.message().await {
        let at = SystemTime::now();
        let secret = default_secret(&response);
        let fresh = last.as_ref() != Some(&secret);
        let ack = DiscoveryRequest {
            version_info: response.version_info.clone(),
            resource_names: vec!["default".into()],
            type_url: Secret::type_url(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        };
        if requests.send(ack).await.is_err() || receipts.send(Receipt { at, fresh }).is_err() {
            return;
        }
        last = Some(secret);
    }
}

fn default_secret(response: &DiscoveryResponse) -> Vec<u8> {
    assert_eq!(response.resources.len(), 1, "one secret, default");
    response.resources[0].value.clone()
}

/// The spread and delays of one rotation, in milliseconds.
struct Rotation {
    from_publication_to_last: f64,
    from_publication_to_first: f64,
    spread: f64,
}

impl Rotation {
    fn of(published: SystemTime, times: &[SystemTime]) -> Rotation {
        let ms = |a: SystemTime, b: SystemTime| match b.duration_since(a) {
            Ok(d) => d.as_secs_f64() * 1e3,
            Err(e) => -e.duration().as_secs_f64() * 1e3,
        };
        let (first, last) = (times[0], times[times.len() - 1]);
        Rotation {
            from_publication_to_last: ms(published, last),
            from_publication_to_first: ms(published, first),
            spread: ms(first, last),
        }
    }
}

fn summarize(label: &str, rotations: &[Rotation]) {
    let stat = |f: fn(&Rotation) -> f64| {
        let mut v: Vec<f64> = rotations.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (last_med, last_max) = stat(|r| r.from_publication_to_last);
    let (first_med, first_max) = stat(|r| r.from_publication_to_first);
    let (spread_med, spread_max) = stat(|r| r.spread);
    println!(
        "{label}: publication → last stream median {last_med:.1} ms (max {last_max:.1}); \
         first → last stream median {spread_med:.1} ms (max {spread_max:.1}); \
         publication → first stream median {first_med:.1} ms (max {first_max:.1})"
    );
}

async fn sds_agent(setup: &Setup, agent: &mut AgentProcess, entry_id: &str, options: &Options) {
    let opened = Instant::now();
    let mut fleet = Fleet::open(&agent.socket, options.streams, options.connections).await;
    println!(
        "\n## SDS fan-out, agent: {} streams over {} connections open and ACKed in {:.2} s",
        options.streams,
        options.connections,
        opened.elapsed().as_secs_f64()
    );
    let mut rotations = Vec::new();
    for round in 0..options.rounds {
        let load = load_average();
        let before = SystemTime::now();
        setup
            .server
            .cli_out(&[
                "entry",
                "update",
                "-entryID",
                entry_id,
                "-spiffeID",
                "spiffe://example.org/main/workload-0",
                "-parentID",
                &agent.id,
                "-selector",
                &format!("unix:uid:{}", setup.uid),
                "-hint",
                &format!("round-{round}"),
            ])
            .await;
        let (times, unchanged) = fleet.rotation().await;
        let publications: Vec<SystemTime> = agent
            .publications()
            .into_iter()
            .filter(|&(at, _)| at >= before)
            .map(|(at, _)| at)
            .collect();
        let published = *publications
            .first()
            .expect("a `cache updated` line after the update");
        let rotation = Rotation::of(published, &times);
        println!(
            "round {round}: update → publication {:.0} ms; publication → first {:.1} ms, → last {:.1} ms; \
             spread {:.1} ms; {} publications, {unchanged} responses without a change; load {load}",
            published
                .duration_since(before)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3),
            rotation.from_publication_to_first,
            rotation.from_publication_to_last,
            rotation.spread,
            publications.len(),
        );
        rotations.push(rotation);
    }
    summarize("agent", &rotations);
    assert!(
        agent.child.try_wait().ok().flatten().is_none(),
        "agent alive"
    );
    fleet.close();
}

async fn sds_baseline(dir: &Path, options: &Options) {
    use sigil_ca::{Key, KeyType, Subject, X509Ca, X509SvidParams};
    use sigil_types::{Bundle, EntryId, SpiffeId, TrustDomain, X509Authority};
    use sigil_workload::testing::StaticIdentities;
    use sigil_workload::{WorkloadConfig, WorkloadSvid, WorkloadUpdate};

    let trust_domain = TrustDomain::new("example.org").expect("td");
    let now = unix_now();
    let ca = X509Ca::self_signed(
        &trust_domain,
        Key::generate("x509-ca", KeyType::EcP256).expect("key"),
        &Subject::spire_ca_default(),
        Duration::from_secs(24 * 3600),
        now,
    )
    .expect("CA");
    let mut bundle = Bundle::new(trust_domain.clone());
    bundle.x509_authorities.push(X509Authority {
        der: ca.cert_der().to_vec(),
        tainted: false,
    });
    let update = |hint: &str| {
        let spiffe_id = SpiffeId::new(&trust_domain, "/workload").expect("id");
        let mut svid = ca
            .mint_x509_svid_with_new_key(KeyType::EcP256, &X509SvidParams::new(spiffe_id), now)
            .expect("SVID");
        svid.hint = hint.to_owned();
        WorkloadUpdate::new(
            vec![WorkloadSvid {
                entry_id: EntryId::new("entry").expect("entry ID"),
                svid,
            }],
            bundle.clone(),
            [],
        )
    };
    let identities = Arc::new(StaticIdentities::new(update("initial")));
    let rounds: Vec<WorkloadUpdate> = (0..options.rounds)
        .map(|r| update(&format!("round-{r}")))
        .collect();

    // The socket on a runtime of its own (two workers, like the agent's), in this process.
    let socket = dir.join("baseline").join("api.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let (socket, identities) = (socket.clone(), identities.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(sigil_workload::serve(
                    socket,
                    identities,
                    WorkloadConfig::default(),
                    async {
                        let _ = stopped.await;
                    },
                ))
        })
    };
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = Instant::now();
    let mut fleet = Fleet::open(&socket, options.streams, options.connections).await;
    println!(
        "\n## SDS fan-out, baseline (sigil_workload::serve + StaticIdentities): {} streams over {} connections open and ACKed in {:.2} s",
        options.streams,
        options.connections,
        opened.elapsed().as_secs_f64()
    );
    let mut rotations = Vec::new();
    for (round, next) in rounds.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let load = load_average();
        let published = SystemTime::now();
        identities.set(next);
        let (times, unchanged) = fleet.rotation().await;
        let rotation = Rotation::of(published, &times);
        println!(
            "round {round}: publication → first {:.1} ms, → last {:.1} ms; spread {:.1} ms; \
             {unchanged} responses without a change; load {load}",
            rotation.from_publication_to_first, rotation.from_publication_to_last, rotation.spread,
        );
        rotations.push(rotation);
    }
    summarize("baseline", &rotations);
    fleet.close();
    let _ = stop.send(());
    let _ = served.join();
}

// === 3. RSS ===

async fn rss(setup: &Setup, options: &Options) {
    let binary = std::fs::metadata(AGENT).expect("agent binary").len();
    println!(
        "\n## RSS: agent binary {AGENT}: {:.1} MiB ({binary} bytes); idle {} s after the first sync",
        binary as f64 / (1024.0 * 1024.0),
        options.idle
    );
    let mut full_idle = Vec::new();
    let mut empty_idle = Vec::new();
    let mut full_restarted = Vec::new();
    let mut empty_restarted = Vec::new();
    for run in 0..options.rss_runs {
        let (full, _) = setup
            .agent_with_entries(&format!("rss-{run}-full"), options.rss_entries)
            .await;
        let (empty, _) = setup
            .agent_with_entries(&format!("rss-{run}-empty"), 0)
            .await;
        tokio::time::sleep(Duration::from_secs(options.idle)).await;
        let load = load_average();
        let full_status = Status::of(full.pid());
        let empty_status = Status::of(empty.pid());
        println!(
            "run {run}, idle: {} SVIDs: {full_status}; 0 SVIDs: {empty_status}; load {load}",
            options.rss_entries
        );
        if run == 0 {
            println!(
                "  where the {}-SVID agent's RSS is (smaps):",
                options.rss_entries
            );
            for (name, kib) in smaps(full.pid()).into_iter().take(12) {
                println!("    {kib:>8} KiB  {name}");
            }
        }
        full_idle.push(full_status);
        empty_idle.push(empty_status);
        // One workload call each (attestor instantiated, one stream served), then idle again.
        let served = fetch_count(&full.socket).await;
        assert_eq!(served, Some(options.rss_entries));
        let _ = fetch_count(&empty.socket).await;
        tokio::time::sleep(Duration::from_secs(options.idle / 2)).await;
        println!(
            "run {run}, after one FetchX509SVID: {} SVIDs: {}; 0 SVIDs: {}",
            options.rss_entries,
            Status::of(full.pid()),
            Status::of(empty.pid())
        );
        // A restart on the same data dir: stored agent SVID, plugins from the artifact cache
        // (no cranelift compile), the SVIDs minted again at the first sync.
        let (full_token, empty_token) = (token_of(&full), token_of(&empty));
        drop((full, empty));
        let full = AgentProcess::start(setup, &format!("rss-{run}-full"), &full_token);
        let empty = AgentProcess::start(setup, &format!("rss-{run}-empty"), &empty_token);
        full.wait_for_sync(options.rss_entries).await;
        empty.wait_for_sync(0).await;
        tokio::time::sleep(Duration::from_secs(options.idle)).await;
        let (full_status, empty_status) = (Status::of(full.pid()), Status::of(empty.pid()));
        println!(
            "run {run}, restarted (warm plugin cache), idle: {} SVIDs: {full_status}; 0 SVIDs: {empty_status}; load {}",
            options.rss_entries,
            load_average()
        );
        if run == 0 {
            println!(
                "  where the restarted {}-SVID agent's RSS is (smaps):",
                options.rss_entries
            );
            for (name, kib) in smaps(full.pid()).into_iter().take(12) {
                println!("    {kib:>8} KiB  {name}");
            }
        }
        full_restarted.push(full_status);
        empty_restarted.push(empty_status);
    }
    let median = |v: &mut [Status]| {
        v.sort_by_key(|s| s.rss_kib);
        v[v.len() / 2]
    };
    let (full, empty) = (median(&mut full_idle), median(&mut empty_idle));
    println!(
        "median of {} runs, idle: {} SVIDs VmRSS {:.1} MiB (VmHWM {:.1} MiB); 0 SVIDs VmRSS {:.1} MiB (VmHWM {:.1} MiB); difference {:.1} MiB",
        options.rss_runs,
        options.rss_entries,
        mib(full.rss_kib),
        mib(full.hwm_kib),
        mib(empty.rss_kib),
        mib(empty.hwm_kib),
        mib(full.rss_kib) - mib(empty.rss_kib)
    );
    let (full, empty) = (median(&mut full_restarted), median(&mut empty_restarted));
    println!(
        "median of {} runs, restarted, idle: {} SVIDs VmRSS {:.1} MiB (VmHWM {:.1} MiB); 0 SVIDs VmRSS {:.1} MiB (VmHWM {:.1} MiB); difference {:.1} MiB",
        options.rss_runs,
        options.rss_entries,
        mib(full.rss_kib),
        mib(full.hwm_kib),
        mib(empty.rss_kib),
        mib(empty.hwm_kib),
        mib(full.rss_kib) - mib(empty.rss_kib)
    );
}

// === 4. JWT-SVID cache RSS ===

async fn jwt_rss(setup: &Setup, options: &Options) {
    println!(
        "\n## JWT-SVID cache RSS: {} FetchJWTSVID calls, two distinct 4,096-byte audiences each",
        options.jwt_calls
    );
    let (agent, _) = setup.agent_with_entries("jwt", 1).await;
    let mut client = SpiffeWorkloadApiClient::new(uds_channel(&agent.socket).await);
    println!("before: {}", Status::of(agent.pid()));
    let started = Instant::now();
    for call in 0..options.jwt_calls {
        let audience = |side: &str| {
            let tag = format!("{side}-{call}-");
            format!("{tag}{}", "x".repeat(4096 - tag.len()))
        };
        let mut request = tonic::Request::new(JwtsvidRequest {
            audience: vec![audience("a"), audience("b")],
            spiffe_id: String::new(),
        });
        request
            .metadata_mut()
            .insert("workload.spiffe.io", "true".parse().expect("header"));
        let svids = client
            .fetch_jwtsvid(request)
            .await
            .expect("FetchJWTSVID")
            .into_inner()
            .svids;
        assert_eq!(svids.len(), 1);
        if call + 1 == 300 || (call + 1) % 500 == 0 {
            println!("after {} calls: {}", call + 1, Status::of(agent.pid()));
        }
    }
    println!(
        "{} calls in {:.1} s; after all: {}",
        options.jwt_calls,
        started.elapsed().as_secs_f64(),
        Status::of(agent.pid())
    );
    tokio::time::sleep(Duration::from_secs(options.idle)).await;
    println!("{} s later: {}", options.idle, Status::of(agent.pid()));
}

/// The join token an agent was started with (the end of its SPIFFE ID).
fn token_of(agent: &AgentProcess) -> String {
    agent.id.rsplit('/').next().expect("a token").to_owned()
}

/// FetchX509SVID once: how many SVIDs (None when refused).
async fn fetch_count(socket: &Path) -> Option<usize> {
    let mut client = SpiffeWorkloadApiClient::new(uds_channel(socket).await);
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("header"));
    let mut stream = client.fetch_x509svid(request).await.ok()?.into_inner();
    let first = stream.message().await.ok()??;
    Some(first.svids.len())
}

#[derive(Clone, Copy)]
struct Status {
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
}

impl Status {
    fn of(pid: u32) -> Status {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Status {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            anon_kib: field("RssAnon:"),
            file_kib: field("RssFile:"),
            threads: field("Threads:"),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (anon {:.1}, file {:.1}), VmHWM {:.1} MiB, {} threads",
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.file_kib),
            mib(self.hwm_kib),
            self.threads
        )
    }
}

/// RSS by mapping name (anonymous mappings together), largest first, KiB.
fn smaps(pid: u32) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range perms offset dev inode [path].
            let perms = words.next().unwrap_or_default();
            let path = words.nth(3).unwrap_or("[anon]");
            current = format!("{path} {perms}");
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by_name.entry(current.clone()).or_default() += kib;
        }
    }
    let mut sorted: Vec<(String, u64)> = by_name.into_iter().collect();
    sorted.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    sorted
}

// === helpers ===

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// tracing-subscriber's timestamp, `2026-11-23T02:51:57.123456Z` (UTC).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let nanos: u32 = digits.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}
