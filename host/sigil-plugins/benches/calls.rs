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
//! - loads: `load_workload_attestor` / `load_id_renderer` from bytes on a fresh host (the
//!   cranelift compile) and again on a host that already holds the digest's `InstancePre`.
//!   Both include the check-configure call every load makes. There is no on-disk artifact
//!   cache yet, so every fresh host compiles.
//!
//! Each plugin call and its native counterpart are timed alternately with `Instant` (one
//! sample each per iteration) so that load from other processes falls on both sides alike.
//! Options: `--iters N` (5000), `--warmup N` (200), `--compiles N` (10), `--loads N` (1000).

#![expect(
    clippy::expect_used,
    reason = "benchmark setup is fixed and always valid; a failure must stop the run"
)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sigil_plugins::{
    NodeSpec, ObjectMeta, PluginHost, PluginSpec, PodSpec, ProcessFacts, RenderInput,
};
use sigil_types::{Selector, SpiffeId, TrustDomain};

const UNIX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unix.wasm"));
const K8S_TEMPLATE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_template.wasm"));

/// The ClusterSPIFFEID default template.
const TEMPLATE: &str =
    "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";

struct Options {
    iters: usize,
    warmup: usize,
    compiles: usize,
    loads: usize,
}

fn options() -> Options {
    let mut o = Options {
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
