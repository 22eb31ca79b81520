//! The plugin host against the built-in plugins and the hostile fixtures of `plugins/`,
//! all compiled by the build script. One binary; a module per plugin kind or concern.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

mod builtin_nodes;
mod capabilities;
mod conformance;
mod k8s;
mod k8s_psat;
mod limits;
mod loading;
mod node;
mod publisher;
mod renderer;
mod unix;

use std::str::FromStr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use sigil_plugins::{
    AttestationStep, HostConfig, IdRenderer, Limits, NodeAttestorServer, NodeSpec, ObjectMeta,
    PluginError, PluginHost, PluginSpec, PodSpec, ProcessFacts, RenderInput, Saturation,
    WorkloadAttestor,
};
use sigil_types::{Selector, SpiffeId, TrustDomain};

const HOSTILE_ATTESTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile_attestor.wasm"));
const HOSTILE_RENDERER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile_renderer.wasm"));
const SOCKETS_ATTESTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sockets_attestor.wasm"));
const UNIX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unix.wasm"));

fn host() -> PluginHost {
    PluginHost::new(Default::default()).expect("plugin host")
}

fn td() -> TrustDomain {
    TrustDomain::new("example.org").expect("trust domain")
}

fn hostile(host: &PluginHost, behaviour: &str) -> WorkloadAttestor {
    host.load_workload_attestor(
        &td(),
        &PluginSpec::bytes("hostile", HOSTILE_ATTESTOR, behaviour),
    )
    .expect("hostile fixture loads")
}

/// The allocating fixture with a CPU budget it cannot exhaust before the memory limit.
fn hog(host: &PluginHost) -> WorkloadAttestor {
    let limits = Limits::default().with_cpu(Duration::from_secs(5));
    let spec = PluginSpec::bytes("hostile", HOSTILE_ATTESTOR, "hog").with_limits(limits);
    host.load_workload_attestor(&td(), &spec)
        .expect("hostile fixture loads")
}

fn renderer(host: &PluginHost, returns: &str) -> IdRenderer {
    host.load_id_renderer(&td(), &PluginSpec::bytes("echo", HOSTILE_RENDERER, returns))
        .expect("renderer fixture loads")
}

/// Effective uid and gid and the supplementary gids of this test process, from procfs.
fn own_ids() -> (u32, u32, Vec<u32>) {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let field = |name: &str| -> Vec<u32> {
        let line = status.lines().find(|l| l.starts_with(name)).expect("field");
        line.split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("number"))
            .collect()
    };
    (field("Uid:")[1], field("Gid:")[1], field("Groups:"))
}

fn selector(s: &str) -> Selector {
    Selector::from_str(s).expect("selector")
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
