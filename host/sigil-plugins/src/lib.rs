//! The WebAssembly plugin host of sigil, and the only crate that depends on wasmtime.
//!
//! Node attestors (server and agent side), workload attestors, SPIFFE-ID renderers and
//! bundle publishers are WebAssembly components of the `sigil:plugin@1.0.0` WIT package
//! (`sdk/wit/`). [`PluginHost`] loads them, built-in (embedded in the binary: `unix`, `k8s`,
//! `k8s_template`, `disk`) or from a file with a `plugin_checksum`, and every call runs in
//! a fresh sandbox:
//!
//! - one engine per profile: plugins that call the host (attestors, publishers) with epoch
//!   interruption, renderers (pure) with fuel; the pooling allocator when the address-space
//!   probe passes, on-demand allocation otherwise;
//! - at most [`HostConfig::max_concurrent_calls`] calls at once per engine; the calls beyond
//!   wait in a bounded queue with a deadline and are refused with
//!   [`PluginError::Saturated`] when it is full or the wait runs out (never a trap);
//! - one linker per world, one `InstancePre` per component digest, a fresh `Store` per call,
//!   so a trapped instance is never reused;
//! - [`Limits`] per call (CPU, memory, output), each with its own [`PluginError`];
//! - WASI linked with a deny-all context; stdout and stderr go to the log tagged with the
//!   plugin name; a component importing anything its world does not grant is refused at
//!   load, naming the import;
//! - every output is validated: selectors get the configured plugin name as their type and
//!   obey count and length limits; SPIFFE IDs must parse and be in the trust domain; agent
//!   IDs must read `spiffe://<trust domain>/spire/agent/<plugin>/<suffix>`.

mod artifacts;
mod bindings;
mod builtin;
mod call;
mod capabilities;
mod capacity;
mod container;
mod engine;
mod error;
mod grants;
mod host;
mod limits;
mod node;
mod output;
mod process;
mod publisher;
mod renderer;
mod spec;
mod state;
mod workload;

pub use capabilities::{
    Grants, JoinTokenRedeemer, KubeletAccess, KubeletTrust, KubernetesAccess, RedeemError,
};
pub use container::Placement;
pub use error::{PluginError, Saturation};
pub use host::PluginHost;
pub use limits::{EPOCH_TICK, HostConfig, Limits};
pub use node::{AttestationStep, AttestedNode, NodeAttestorAgent, NodeAttestorServer};
pub use process::{ProcRoots, ProcessFacts};
pub use publisher::{BundlePublisher, ConfigMapTarget, PublishTarget};
pub use renderer::{IdRenderer, NodeSpec, ObjectMeta, PodSpec, RenderInput};
pub use spec::{PluginSource, PluginSpec};
pub use workload::WorkloadAttestor;

#[cfg(test)]
mod tests;
