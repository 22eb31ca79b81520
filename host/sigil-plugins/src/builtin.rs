//! The built-in plugins, compiled for `wasm32-wasip2` by the build script and embedded, so
//! a default install needs no plugin files.

/// The built-in `unix` workload attestor.
const UNIX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unix.wasm"));
/// The built-in `k8s` workload attestor.
const K8S: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.wasm"));
/// The built-in `k8s_template` SPIFFE-ID renderer.
const K8S_TEMPLATE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_template.wasm"));

/// The built-in `disk` bundle publisher.
const DISK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/disk.wasm"));
/// The built-in `k8s_configmap` bundle publisher.
const K8S_CONFIGMAP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_configmap.wasm"));

/// The built-in `join_token` node attestor, server and agent side.
const JOIN_TOKEN_SERVER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/join_token_server.wasm"));
const JOIN_TOKEN_AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/join_token_agent.wasm"));
/// The built-in `x509pop` node attestor, server and agent side.
const X509POP_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/x509pop_server.wasm"));
const X509POP_AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/x509pop_agent.wasm"));
/// The built-in `k8s_psat` node attestor, server and agent side.
const K8S_PSAT_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_psat_server.wasm"));
const K8S_PSAT_AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_psat_agent.wasm"));

/// The built-in node attestor (server side) named `name`.
pub(crate) fn node_attestor_server(name: &str) -> Option<&'static [u8]> {
    match name {
        "join_token" => Some(JOIN_TOKEN_SERVER),
        "x509pop" => Some(X509POP_SERVER),
        "k8s_psat" => Some(K8S_PSAT_SERVER),
        _ => None,
    }
}

/// The built-in node attestor (agent side) named `name`.
pub(crate) fn node_attestor_agent(name: &str) -> Option<&'static [u8]> {
    match name {
        "join_token" => Some(JOIN_TOKEN_AGENT),
        "x509pop" => Some(X509POP_AGENT),
        "k8s_psat" => Some(K8S_PSAT_AGENT),
        _ => None,
    }
}

/// The built-in workload attestor named `name`.
pub(crate) fn workload_attestor(name: &str) -> Option<&'static [u8]> {
    match name {
        "unix" => Some(UNIX),
        "k8s" => Some(K8S),
        _ => None,
    }
}

/// The built-in SPIFFE-ID renderer named `name`.
pub(crate) fn id_renderer(name: &str) -> Option<&'static [u8]> {
    match name {
        "k8s_template" => Some(K8S_TEMPLATE),
        _ => None,
    }
}

/// The built-in bundle publisher named `name`.
pub(crate) fn bundle_publisher(name: &str) -> Option<&'static [u8]> {
    match name {
        "disk" => Some(DISK),
        "k8s_configmap" => Some(K8S_CONFIGMAP),
        _ => None,
    }
}
