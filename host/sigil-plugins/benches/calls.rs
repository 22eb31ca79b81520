//! Per-call cost of the plugin host (issue 3), each call on a fresh instance as in production,
//! against the same logic written natively and timed in the same run.
//!
//! ```text
//! cargo bench -p sigil-plugins --bench calls
//! ```
//!
//! - `workload-attestor`: the built-in `unix` plugin's `attest_process` on facts of this
//!   process resolved once before timing (procfs and `/etc` reads are excluded from both
//!   sides), against the same selectors built natively (`format!` + `Selector::new`).
//! - `id-renderer`: the built-in `k8s_template` with the ClusterSPIFFEID default template,
//!   against `format!` + `SpiffeId` parse + trust-domain check.
//! - `node-attestor-server` / `-agent`: the built-in `join_token` (server: check the token,
//!   redeem it through an in-memory redeemer, build the agent ID; agent: the payload),
//!   against the same steps natively. `x509pop`'s full round (chain check, challenge,
//!   signature by the granted key, verification) is timed without a native twin: its cost
//!   is the host's native crypto, which both would share.
//! - `bundle-publisher`: the built-in `disk` writing a PEM bundle to a file (write + fsync +
//!   rename), against the same write done natively.
//! - loads: from bytes on a fresh host (the cranelift compile), on a fresh host whose
//!   artifact cache holds the compiled component (a restart), and again on a host that
//!   already holds the digest's `InstancePre`. All include the check-configure call every
//!   load makes.
//!
//! Each plugin call and its native counterpart are timed alternately with `Instant` (one
//! sample each per iteration) so that load from other processes falls on both sides alike.
//! Options: `--iters N` (5000), `--warmup N` (200), `--compiles N` (10), `--loads N` (1000),
//! `--profile-renderer` (only `iters` renderer calls, for `perf record`).

#![expect(
    clippy::expect_used,
    reason = "benchmark setup is fixed and always valid; a failure must stop the run"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use sigil_plugins::{
    AttestationStep, Grants, HostConfig, JoinTokenRedeemer, NodeSpec, ObjectMeta, PluginHost,
    PluginSpec, PodSpec, ProcessFacts, PublishTarget, RedeemError, RenderInput,
};
use sigil_types::{Bundle, Selector, SpiffeId, TrustDomain, X509Authority};

const UNIX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unix.wasm"));
const K8S_TEMPLATE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_template.wasm"));

/// The ClusterSPIFFEID default template.
const TEMPLATE: &str =
    "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";

struct Options {
    /// `--profile-renderer`: only call the renderer, `iters` times, for a profiler.
    profile_renderer: bool,
    iters: usize,
    warmup: usize,
    compiles: usize,
    loads: usize,
}

fn options() -> Options {
    let mut o = Options {
        profile_renderer: false,
        iters: 5000,
        warmup: 200,
        compiles: 10,
        loads: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("option needs a number")
        };
        match arg.as_str() {
            "--iters" => o.iters = value(),
            "--warmup" => o.warmup = value(),
            "--compiles" => o.compiles = value(),
            "--loads" => o.loads = value(),
            "--profile-renderer" => o.profile_renderer = true,
            // `cargo bench` passes `--bench`; ignore it and other harness flags.
            _ => {}
        }
    }
    o
}

/// Sorted samples.
struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Samples(samples)
    }

    /// Nearest-rank percentile, `per_mille` in 0..=1000.
    fn percentile(&self, per_mille: usize) -> Duration {
        let last = self.0.len().saturating_sub(1);
        let index = (last * per_mille + 500) / 1000;
        self.0.get(index.min(last)).copied().unwrap_or_default()
    }

    fn p50(&self) -> Duration {
        self.percentile(500)
    }

    fn p99(&self) -> Duration {
        self.percentile(990)
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Microseconds below 10 ms, milliseconds above.
fn human(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:>8.2} µs", us(d))
    } else {
        format!("{:>8.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn row(what: &str, plugin: &Samples, native: Option<&Samples>) {
    match native {
        Some(native) => println!(
            "{what:<40} plugin p50 {:>9.2} µs  p99 {:>9.2} µs | native p50 {:>7.2} µs  p99 {:>7.2} µs | ratio p50 {:>7.1}",
            us(plugin.p50()),
            us(plugin.p99()),
            us(native.p50()),
            us(native.p99()),
            plugin.p50().as_secs_f64() / native.p50().as_secs_f64().max(1e-12),
        ),
        None => println!(
            "{what:<40} p50 {}  p99 {}  min {}  max {}  (n = {})",
            human(plugin.p50()),
            human(plugin.p99()),
            human(plugin.percentile(0)),
            human(plugin.percentile(1000)),
            plugin.0.len(),
        ),
    }
}

/// Time `plugin` and `native` alternately: `warmup` untimed rounds, then `iters` timed ones.
fn alternate<A, B>(
    o: &Options,
    mut plugin: impl FnMut() -> A,
    mut native: impl FnMut() -> B,
) -> (Samples, Samples) {
    for _ in 0..o.warmup {
        black_box(plugin());
        black_box(native());
    }
    let mut p = Vec::with_capacity(o.iters);
    let mut n = Vec::with_capacity(o.iters);
    for _ in 0..o.iters {
        let start = Instant::now();
        black_box(plugin());
        p.push(start.elapsed());
        let start = Instant::now();
        black_box(native());
        n.push(start.elapsed());
    }
    (Samples::new(p), Samples::new(n))
}

/// The `unix` plugin's selectors, written natively: the baseline of the attestor call.
fn native_unix(facts: &ProcessFacts) -> Vec<Selector> {
    let mut values = Vec::new();
    values.push(format!("uid:{}", facts.uid()));
    if let Some(user) = facts.user_name() {
        values.push(format!("user:{user}"));
    }
    let gid = facts.gid();
    values.push(format!("gid:{gid}"));
    if let Some(group) = facts.group_name(gid) {
        values.push(format!("group:{group}"));
    }
    for &gid in facts.supplementary_gids() {
        values.push(format!("supplementary_gid:{gid}"));
        if let Some(group) = facts.group_name(gid) {
            values.push(format!("supplementary_group:{group}"));
        }
    }
    values
        .iter()
        .map(|value| Selector::new("unix", value).expect("selector"))
        .collect()
}

/// The default template, written natively: the baseline of the renderer call.
fn native_render(trust_domain: &TrustDomain, input: &RenderInput) -> Option<SpiffeId> {
    let id = format!(
        "spiffe://{}/ns/{}/sa/{}",
        trust_domain.name(),
        input.pod_meta.namespace,
        input.pod_spec.service_account_name
    );
    let id = SpiffeId::from_str(&id).expect("id");
    id.is_member_of(trust_domain).then_some(id)
}

fn pod_input() -> RenderInput {
    let meta = |name: &str, labels: &[(&str, &str)]| ObjectMeta {
        name: name.into(),
        namespace: "prod".into(),
        uid: "0000-1111".into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        annotations: vec![],
    };
    RenderInput {
        cluster_name: "demo".into(),
        cluster_domain: "cluster.local".into(),
        pod_meta: meta("web-0", &[("app", "web")]),
        pod_spec: PodSpec {
            service_account_name: "web-sa".into(),
            node_name: "node-1".into(),
            hostname: "web-0".into(),
            subdomain: String::new(),
        },
        node_meta: meta("node-1", &[]),
        node_spec: NodeSpec {
            pod_cidr: "10.0.0.0/24".into(),
            provider_id: "kind://node-1".into(),
        },
    }
}

fn host() -> PluginHost {
    PluginHost::new(Default::default()).expect("plugin host")
}

/// Time `load` once per fresh host: the compiling load (host creation not timed).
fn compiling_loads<T>(n: usize, load: impl Fn(&PluginHost) -> T) -> Samples {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let host = host();
        let start = Instant::now();
        black_box(load(&host));
        samples.push(start.elapsed());
    }
    Samples::new(samples)
}

/// Time `load` `n` times on one host that already compiled the component.
fn cached_loads<T>(o: &Options, load: impl Fn(&PluginHost) -> T) -> Samples {
    let host = host();
    black_box(load(&host));
    for _ in 0..o.warmup {
        black_box(load(&host));
    }
    let mut samples = Vec::with_capacity(o.loads);
    for _ in 0..o.loads {
        let start = Instant::now();
        black_box(load(&host));
        samples.push(start.elapsed());
    }
    Samples::new(samples)
}

fn main() {
    let o = options();
    let td = TrustDomain::new("example.org").expect("trust domain");
    let host = host();
    println!(
        "sigil-plugins calls: pooling allocator {}, {} warm-up + {} timed calls per side, \
         unix.wasm {} bytes, k8s_template.wasm {} bytes",
        if host.uses_pooling() { "on" } else { "off" },
        o.warmup,
        o.iters,
        UNIX.len(),
        K8S_TEMPLATE.len(),
    );

    // workload-attestor
    let unix = host
        .load_workload_attestor(&td, &PluginSpec::bytes("unix", UNIX, ""))
        .expect("unix loads");
    let facts = ProcessFacts::resolve(std::process::id()).expect("own process facts");
    let from_plugin = unix.attest_process(facts.clone()).expect("attest");
    assert_eq!(
        from_plugin,
        native_unix(&facts),
        "the native baseline gives the plugin's selectors"
    );
    println!(
        "unix selectors ({}): {}",
        from_plugin.len(),
        from_plugin
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (plugin, native) = attest_samples(&o, &unix, &facts);
    row("workload-attestor unix", &plugin, Some(&native));

    // id-renderer
    let data = format!("template = \"{}\"", TEMPLATE.replace('"', "\\\""));
    let renderer = host
        .load_id_renderer(&td, &PluginSpec::bytes("k8s_template", K8S_TEMPLATE, &data))
        .expect("k8s_template loads");
    let input = pod_input();
    if o.profile_renderer {
        for _ in 0..o.iters {
            black_box(renderer.render(&input).expect("renders"));
        }
        return;
    }
    let rendered = renderer.render(&input).expect("renders");
    assert_eq!(
        rendered,
        native_render(&td, &input),
        "the native baseline gives the plugin's ID"
    );
    println!(
        "k8s_template renders: {}",
        rendered.map(|id| id.to_string()).unwrap_or_default()
    );
    let (plugin, native) = alternate(
        &o,
        || renderer.render(&input).expect("renders"),
        || native_render(&td, &input),
    );
    row("id-renderer k8s_template", &plugin, Some(&native));

    // loads
    let unix_spec = PluginSpec::bytes("unix", UNIX, "");
    let load_unix = |host: &PluginHost| {
        host.load_workload_attestor(&td, &unix_spec)
            .expect("unix loads")
    };
    row(
        "load unix, compiling (fresh host)",
        &compiling_loads(o.compiles, load_unix),
        None,
    );
    row(
        "load unix, InstancePre cached",
        &cached_loads(&o, load_unix),
        None,
    );
    let renderer_spec = PluginSpec::bytes("k8s_template", K8S_TEMPLATE, &data);
    let load_renderer = |host: &PluginHost| {
        host.load_id_renderer(&td, &renderer_spec)
            .expect("k8s_template loads")
    };
    row(
        "load k8s_template, compiling",
        &compiling_loads(o.compiles, load_renderer),
        None,
    );
    row(
        "load k8s_template, InstancePre cached",
        &cached_loads(&o, load_renderer),
        None,
    );
    let cache = tempfile::tempdir().expect("cache dir");
    row(
        "load unix, precompiled (fresh host)",
        &precompiled_loads(o.loads.min(200), cache.path(), load_unix),
        None,
    );
    row(
        "load k8s_template, precompiled",
        &precompiled_loads(o.loads.min(200), cache.path(), load_renderer),
        None,
    );

    node_attestors(&o, &host, &td);
    publisher(&o, &host, &td);
}

/// Accepts every token: the bench times the plugin, not a datastore.
struct AcceptAll;

impl JoinTokenRedeemer for AcceptAll {
    fn redeem(&self, token: &str) -> Result<(), RedeemError> {
        black_box(token);
        Ok(())
    }
}

/// `join_token`'s server-side steps, natively: check the token, build the agent ID.
fn native_join_token(td: &TrustDomain, payload: &[u8]) -> SpiffeId {
    let token = std::str::from_utf8(payload).expect("utf-8");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    );
    black_box(AcceptAll.redeem(token)).expect("redeemed");
    let id = SpiffeId::from_str(&format!(
        "spiffe://{}/spire/agent/join_token/{token}",
        td.name()
    ))
    .expect("id");
    assert!(id.is_member_of(td));
    id
}

fn node_attestors(o: &Options, host: &PluginHost, td: &TrustDomain) {
    let server = host
        .load_node_attestor_server(
            td,
            &PluginSpec::builtin("join_token", "")
                .with_grants(Grants::default().with_join_tokens(Arc::new(AcceptAll))),
        )
        .expect("join_token server loads");
    let token = "4f0b6d2e-9c1a-4e53-8f6b-2d7c9e1a0b35";
    let agent = host
        .load_node_attestor_agent(
            td,
            &PluginSpec::builtin("join_token", &format!("join_token = \"{token}\"")),
        )
        .expect("join_token agent loads");
    let payload = agent.payload().expect("payload");
    let (plugin, native) = alternate(
        o,
        || server.attest(&payload).expect("attested"),
        || native_join_token(td, &payload),
    );
    row("node-attestor-server join_token", &plugin, Some(&native));
    let (plugin, native) = alternate(
        o,
        || agent.payload().expect("payload"),
        || token.as_bytes().to_vec(),
    );
    row("node-attestor-agent join_token", &plugin, Some(&native));

    let dir = tempfile::tempdir().expect("pki dir");
    write_pki(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let server = host
        .load_node_attestor_server(
            td,
            &PluginSpec::builtin(
                "x509pop",
                &format!("ca_bundle_path = \"{}\"", path("root.pem")),
            ),
        )
        .expect("x509pop server loads");
    let agent = host
        .load_node_attestor_agent(
            td,
            &PluginSpec::builtin(
                "x509pop",
                &format!(
                    "certificate_path = \"{}\"\nprivate_key_path = \"{}\"",
                    path("node.pem"),
                    path("node.key")
                ),
            ),
        )
        .expect("x509pop agent loads");
    let round = || {
        let payload = agent.payload().expect("payload");
        let AttestationStep::Challenge { challenge, state } =
            server.attest(&payload).expect("round")
        else {
            panic!("x509pop challenges");
        };
        let answer = agent.answer(&challenge).expect("answer");
        server.resume(&state, &answer).expect("attested")
    };
    let iters = o.iters.min(1000);
    let samples = Samples::new(
        (0..iters)
            .map(|_| {
                let start = Instant::now();
                black_box(round());
                start.elapsed()
            })
            .collect(),
    );
    row("x509pop full round (4 plugin calls)", &samples, None);
}

/// A root and a node certificate for x509pop, as files in `dir`.
fn write_pki(dir: &std::path::Path) {
    let root_key = rcgen::KeyPair::generate().expect("key");
    let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = root_params.self_signed(&root_key).expect("root");
    let issuer = rcgen::Issuer::from_params(&root_params, &root_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["node-1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    std::fs::write(dir.join("root.pem"), root.pem()).expect("root");
    std::fs::write(dir.join("node.pem"), leaf.pem()).expect("leaf");
    std::fs::write(dir.join("node.key"), key.serialize_pem()).expect("key");
}

fn publisher(o: &Options, host: &PluginHost, td: &TrustDomain) {
    let disk = host
        .load_bundle_publisher(td, &PluginSpec::builtin("disk", "format = \"pem\""))
        .expect("disk loads");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["ca".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let mut bundle = Bundle::new(td.clone());
    bundle.x509_authorities.push(X509Authority {
        der: cert.der().to_vec(),
        tainted: false,
    });
    let dir = tempfile::tempdir().expect("dir");
    let target = PublishTarget::File(dir.path().join("bundle.pem"));
    let native_path = dir.path().join("native.pem");
    let native = || {
        let pem = bundle.x509_authorities_pem();
        let temporary = dir.path().join(".native.tmp");
        let mut file = std::fs::File::create(&temporary).expect("create");
        std::io::Write::write_all(&mut file, pem.as_bytes()).expect("write");
        file.sync_all().expect("sync");
        std::fs::rename(&temporary, &native_path).expect("rename");
    };
    let iters = o.iters.min(500);
    let short = Options {
        iters,
        profile_renderer: false,
        warmup: o.warmup.min(20),
        compiles: o.compiles,
        loads: o.loads,
    };
    let (plugin, native) = alternate(
        &short,
        || disk.publish(&bundle, &target).expect("published"),
        native,
    );
    row(
        "bundle-publisher disk (write+fsync+rename)",
        &plugin,
        Some(&native),
    );
}

/// Time `load` on `n` fresh hosts sharing the artifact cache `dir`, after one host filled
/// it (host creation not timed): what a restart pays.
fn precompiled_loads<T>(
    n: usize,
    dir: &std::path::Path,
    load: impl Fn(&PluginHost) -> T,
) -> Samples {
    let cached = |dir: &std::path::Path| {
        PluginHost::new(HostConfig::default().with_artifact_cache(dir)).expect("host")
    };
    black_box(load(&cached(dir)));
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let host = cached(dir);
        let start = Instant::now();
        black_box(load(&host));
        samples.push(start.elapsed());
    }
    Samples::new(samples)
}

/// The attestor call and its native baseline, alternately, with cloning the facts (which
/// the plugin call consumes) outside the timed region of both.
fn attest_samples(
    o: &Options,
    unix: &sigil_plugins::WorkloadAttestor,
    facts: &ProcessFacts,
) -> (Samples, Samples) {
    for _ in 0..o.warmup {
        black_box(unix.attest_process(facts.clone()).expect("attest"));
        black_box(native_unix(facts));
    }
    let mut p = Vec::with_capacity(o.iters);
    let mut n = Vec::with_capacity(o.iters);
    for _ in 0..o.iters {
        let process = facts.clone();
        let start = Instant::now();
        black_box(unix.attest_process(process).expect("attest"));
        p.push(start.elapsed());
        let start = Instant::now();
        black_box(native_unix(black_box(facts)));
        n.push(start.elapsed());
    }
    (Samples::new(p), Samples::new(n))
}
