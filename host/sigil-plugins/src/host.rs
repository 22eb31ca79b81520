//! The plugin host: the engines, one linker per world, and the cache of pre-instantiated
//! components keyed by digest.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest;
use sigil_types::{Selector, TrustDomain};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceType};

use crate::artifacts::ArtifactCache;
use crate::bindings::node_agent::{NodeAttestorAgent as NodeAgentWorld, NodeAttestorAgentPre};
use crate::bindings::node_server::{NodeAttestorServer as NodeServerWorld, NodeAttestorServerPre};
use crate::bindings::publisher::{BundlePublisher as PublisherWorld, BundlePublisherPre};
use crate::bindings::renderer::{IdRenderer as IdRendererWorld, IdRendererPre};
use crate::bindings::workload::{WorkloadAttestor as WorkloadWorld, WorkloadAttestorPre};
use crate::builtin;
use crate::call::Core;
use crate::capabilities::HttpClients;
use crate::engine::{Profile, ProfileEngine};
use crate::error::PluginError;
use crate::grants::{self, Kind};
use crate::limits::HostConfig;
use crate::node::{NodeAttestorAgent, NodeAttestorServer};
use crate::process::ProcessFacts;
use crate::publisher::{BundlePublisher, PublishTarget};
use crate::renderer::IdRenderer;
use crate::spec::{PluginSource, PluginSpec};
use crate::state::CallState;
use crate::workload::WorkloadAttestor;

/// Interface names the linkers define by hand.
const RENDER_TYPES: &str = "sigil:plugin/render-types@1.0.0";
const WORKLOAD_FACTS: &str = "sigil:plugin/workload-facts@1.0.0";
const NODE_ATTESTATION: &str = "sigil:plugin/node-attestation@1.0.0";
const BUNDLE_TYPES: &str = "sigil:plugin/bundle-types@1.0.0";
const PUBLISH_TARGET: &str = "sigil:plugin/publish-target@1.0.0";

/// SHA-256 of a component.
type Digest = [u8; 32];

/// Loads plugins and keeps what loading them cost: one engine per profile, one linker per
/// world, one `InstancePre` per component digest. Cheap to clone and share.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

struct Inner {
    config: HostConfig,
    io: ProfileEngine,
    pure: ProfileEngine,
    workload_linker: Linker<CallState>,
    renderer_linker: Linker<CallState>,
    node_server_linker: Linker<CallState>,
    node_agent_linker: Linker<CallState>,
    publisher_linker: Linker<CallState>,
    workload_cache: Cache<WorkloadAttestorPre<CallState>>,
    renderer_cache: Cache<IdRendererPre<CallState>>,
    node_server_cache: Cache<NodeAttestorServerPre<CallState>>,
    node_agent_cache: Cache<NodeAttestorAgentPre<CallState>>,
    publisher_cache: Cache<BundlePublisherPre<CallState>>,
    http: HttpClients,
    artifacts: Option<ArtifactCache>,
}

/// Pre-instantiated components of one world by digest, with the component itself for the
/// per-load grant check.
type Cache<P> = Mutex<HashMap<Digest, (P, Component)>>;

impl PluginHost {
    /// A host with `config`: builds both engines (probing for the pooling allocator) and
    /// links every world.
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        let artifacts = config
            .artifact_cache
            .as_deref()
            .map(ArtifactCache::open)
            .transpose()?;
        let io = ProfileEngine::new(Profile::Io, &config)?;
        let pure = ProfileEngine::new(Profile::Pure, &config)?;
        let workload_linker = world_linker(&io, grants::WORKLOAD_ATTESTOR, |linker| {
            WorkloadWorld::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        })?;
        let renderer_linker = world_linker(&pure, grants::ID_RENDERER, |linker| {
            IdRendererWorld::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        })?;
        let node_server_linker = world_linker(&io, grants::NODE_ATTESTOR_SERVER, |linker| {
            NodeServerWorld::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        })?;
        let node_agent_linker = world_linker(&io, grants::NODE_ATTESTOR_AGENT, |linker| {
            NodeAgentWorld::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        })?;
        let publisher_linker = world_linker(&io, grants::BUNDLE_PUBLISHER, |linker| {
            PublisherWorld::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        })?;
        Ok(PluginHost {
            inner: Arc::new(Inner {
                config,
                io,
                pure,
                workload_linker,
                renderer_linker,
                node_server_linker,
                node_agent_linker,
                publisher_linker,
                workload_cache: Mutex::default(),
                renderer_cache: Mutex::default(),
                node_server_cache: Mutex::default(),
                node_agent_cache: Mutex::default(),
                publisher_cache: Mutex::default(),
                http: HttpClients::default(),
                artifacts,
            }),
        })
    }

    /// Whether the engines use the pooling allocator (the address-space probe passed).
    pub fn uses_pooling(&self) -> bool {
        self.inner.io.pooling && self.inner.pure.pooling
    }

    /// Load a workload attestor for `trust_domain`, and configure it once to check its
    /// `plugin_data`. Built in: `unix`, `k8s` (grant it the kubelet: `pod-lookup`).
    pub fn load_workload_attestor(
        &self,
        trust_domain: &TrustDomain,
        spec: &PluginSpec,
    ) -> Result<WorkloadAttestor, PluginError> {
        let inner = &*self.inner;
        let pre = self.load(
            spec,
            grants::WORKLOAD_ATTESTOR,
            builtin::workload_attestor,
            (&inner.io, &inner.workload_linker, &inner.workload_cache),
            WorkloadAttestorPre::new,
        )?;
        let plugin = WorkloadAttestor {
            core: self.core(trust_domain, spec, Profile::Io),
            pre,
        };
        plugin.check_configure()?;
        Ok(plugin)
    }

    /// Load a SPIFFE-ID renderer for `trust_domain`, and configure it once to check its
    /// `plugin_data`. Built in: `k8s_template`.
    pub fn load_id_renderer(
        &self,
        trust_domain: &TrustDomain,
        spec: &PluginSpec,
    ) -> Result<IdRenderer, PluginError> {
        let inner = &*self.inner;
        let pre = self.load(
            spec,
            grants::ID_RENDERER,
            builtin::id_renderer,
            (&inner.pure, &inner.renderer_linker, &inner.renderer_cache),
            IdRendererPre::new,
        )?;
        let plugin = IdRenderer {
            core: self.core(trust_domain, spec, Profile::Pure),
            pre,
        };
        plugin.check_configure()?;
        Ok(plugin)
    }

    /// Load a node attestor (server side) for `trust_domain`, and configure it once to
    /// check its `plugin_data`. Built in: `join_token` (grant it `join_tokens`), `x509pop`.
    pub fn load_node_attestor_server(
        &self,
        trust_domain: &TrustDomain,
        spec: &PluginSpec,
    ) -> Result<NodeAttestorServer, PluginError> {
        let inner = &*self.inner;
        let pre = self.load(
            spec,
            grants::NODE_ATTESTOR_SERVER,
            builtin::node_attestor_server,
            (
                &inner.io,
                &inner.node_server_linker,
                &inner.node_server_cache,
            ),
            NodeAttestorServerPre::new,
        )?;
        let plugin = NodeAttestorServer {
            core: self.core(trust_domain, spec, Profile::Io),
            pre,
        };
        plugin.check_configure()?;
        Ok(plugin)
    }

    /// Load a node attestor (agent side) for `trust_domain`, and configure it once to check
    /// its `plugin_data`. Built in: `join_token` (the token in `plugin_data` as
    /// `join_token = "…"`), `x509pop`.
    pub fn load_node_attestor_agent(
        &self,
        trust_domain: &TrustDomain,
        spec: &PluginSpec,
    ) -> Result<NodeAttestorAgent, PluginError> {
        let inner = &*self.inner;
        let pre = self.load(
            spec,
            grants::NODE_ATTESTOR_AGENT,
            builtin::node_attestor_agent,
            (&inner.io, &inner.node_agent_linker, &inner.node_agent_cache),
            NodeAttestorAgentPre::new,
        )?;
        let plugin = NodeAttestorAgent {
            core: self.core(trust_domain, spec, Profile::Io),
            pre,
        };
        plugin.check_configure()?;
        Ok(plugin)
    }

    /// Load a bundle publisher for `trust_domain`, and configure it once to check its
    /// `plugin_data`. Built in: `disk`.
    pub fn load_bundle_publisher(
        &self,
        trust_domain: &TrustDomain,
        spec: &PluginSpec,
    ) -> Result<BundlePublisher, PluginError> {
        let inner = &*self.inner;
        let pre = self.load(
            spec,
            grants::BUNDLE_PUBLISHER,
            builtin::bundle_publisher,
            (&inner.io, &inner.publisher_linker, &inner.publisher_cache),
            BundlePublisherPre::new,
        )?;
        let plugin = BundlePublisher {
            core: self.core(trust_domain, spec, Profile::Io),
            pre,
        };
        plugin.check_configure()?;
        Ok(plugin)
    }

    /// The typed `InstancePre` of `spec` as a `kind` plugin: bytes, checksum, then the
    /// cache by digest or compile, check the grants, link and type-check the exports.
    fn load<P: Clone>(
        &self,
        spec: &PluginSpec,
        kind: Kind,
        builtin: fn(&str) -> Option<&'static [u8]>,
        (engine, linker, cache): (&ProfileEngine, &Linker<CallState>, &Cache<P>),
        typed: fn(InstancePre<CallState>) -> wasmtime::Result<P>,
    ) -> Result<P, PluginError> {
        let wasm = self.component_bytes(spec, kind, builtin)?;
        let digest = self.verify(spec, &wasm)?;
        let (pre, component) = cached(cache, digest, || {
            let component = match &self.inner.artifacts {
                Some(artifacts) => {
                    artifacts.component(&engine.engine, engine.profile, &digest, || {
                        self.compile(spec, engine, &wasm)
                    })?
                }
                None => self.compile(spec, engine, &wasm)?,
            };
            // The world's own imports are checked before linking (the capabilities below):
            // a component asking for sockets never reaches the linker.
            grants::check_imports(&spec.name, kind, &spec.grants, &engine.engine, &component)?;
            let instance_pre = linker
                .instantiate_pre(&component)
                .map_err(|e| wrong_world(spec, kind, &e))?;
            let pre = typed(instance_pre).map_err(|e| wrong_world(spec, kind, &e))?;
            Ok((pre, component))
        })?;
        // Grants differ per configured plugin, while the cache is per component: check them
        // on every load.
        grants::check_imports(&spec.name, kind, &spec.grants, &engine.engine, &component)?;
        Ok(pre)
    }

    fn core(&self, trust_domain: &TrustDomain, spec: &PluginSpec, profile: Profile) -> Core {
        let engine = match profile {
            Profile::Io => &self.inner.io,
            Profile::Pure => &self.inner.pure,
        };
        Core {
            name: Arc::from(spec.name.as_str()),
            trust_domain: trust_domain.clone(),
            data: Arc::from(spec.data.as_str()),
            limits: spec.limits.clone(),
            engine: engine.clone(),
            profile,
            grants: Arc::new(spec.grants.clone()),
            http: self.inner.http.clone(),
        }
    }

    /// The component's bytes, after checking the name and the limits.
    fn component_bytes(
        &self,
        spec: &PluginSpec,
        kind: Kind,
        builtin: fn(&str) -> Option<&'static [u8]>,
    ) -> Result<Vec<u8>, PluginError> {
        if Selector::new(&spec.name, "value").is_err() {
            return Err(PluginError::BadName(spec.name.clone()));
        }
        if spec.limits.memory_bytes > self.inner.config.memory_ceiling {
            return Err(PluginError::Host(format!(
                "plugin {}: memory limit {} is above the host's ceiling of {} bytes",
                spec.name, spec.limits.memory_bytes, self.inner.config.memory_ceiling
            )));
        }
        match &spec.source {
            PluginSource::Builtin => {
                builtin(&spec.name)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| PluginError::UnknownBuiltin {
                        kind: kind.name,
                        name: spec.name.clone(),
                    })
            }
            PluginSource::File(path) => read_wasm(&spec.name, path),
            PluginSource::Bytes(bytes) => Ok(bytes.clone()),
        }
    }

    /// The component's digest, checked against `plugin_checksum` when one is configured.
    fn verify(&self, spec: &PluginSpec, wasm: &[u8]) -> Result<Digest, PluginError> {
        let mut digest_bytes = [0u8; 32];
        digest_bytes.copy_from_slice(digest::digest(&digest::SHA256, wasm).as_ref());
        if let Some(expected) = &spec.checksum {
            let expected = expected.trim().to_ascii_lowercase();
            let mut expected_bytes = [0u8; 32];
            hex::decode_to_slice(&expected, &mut expected_bytes).map_err(|_| {
                PluginError::BadChecksum {
                    plugin: spec.name.clone(),
                }
            })?;
            if expected_bytes != digest_bytes {
                return Err(PluginError::ChecksumMismatch {
                    plugin: spec.name.clone(),
                    expected,
                    actual: hex::encode(digest_bytes),
                });
            }
        }
        Ok(digest_bytes)
    }

    /// Compile the component.
    fn compile(
        &self,
        spec: &PluginSpec,
        engine: &ProfileEngine,
        wasm: &[u8],
    ) -> Result<Component, PluginError> {
        Component::new(&engine.engine, wasm).map_err(|e| PluginError::InvalidComponent {
            plugin: spec.name.clone(),
            reason: format!("{e:#}"),
        })
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .field("io", &self.inner.io)
            .field("pure", &self.inner.pure)
            .finish_non_exhaustive()
    }
}

/// The cached value for `key`, or the one `make` builds (which is then cached). The lock is
/// not held while compiling, so two first loads of one digest may both compile.
fn cached<K: Hash + Eq, V: Clone>(
    cache: &Mutex<HashMap<K, V>>,
    key: K,
    make: impl FnOnce() -> Result<V, PluginError>,
) -> Result<V, PluginError> {
    if let Some(value) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(value.clone());
    }
    let value = make()?;
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, value.clone());
    Ok(value)
}

/// A linker for one world: deny-all WASI, the world's own imports, and the type-only
/// interfaces of the other worlds.
fn world_linker(
    engine: &ProfileEngine,
    kind: Kind,
    add_world: impl FnOnce(&mut Linker<CallState>) -> wasmtime::Result<()>,
) -> Result<Linker<CallState>, PluginError> {
    let mut linker = Linker::new(&engine.engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .and_then(|()| add_world(&mut linker))
        .and_then(|()| define_foreign_types(&mut linker, kind))
        .map_err(|e| PluginError::Host(format!("cannot link the {} world: {e:#}", kind.name)))?;
    Ok(linker)
}

/// Define the type-only interfaces of the other worlds that every `sigil-pdk` plugin
/// imports (see `grants::is_type_only`): empty instances, and the bare `workload-process`
/// resource type with no functions.
fn define_foreign_types(linker: &mut Linker<CallState>, kind: Kind) -> wasmtime::Result<()> {
    for name in [RENDER_TYPES, NODE_ATTESTATION, BUNDLE_TYPES] {
        if !kind.imports(unversioned(name)) {
            linker.instance(name)?;
        }
    }
    if !kind.imports(unversioned(WORKLOAD_FACTS)) {
        linker.instance(WORKLOAD_FACTS)?.resource(
            "workload-process",
            ResourceType::host::<ProcessFacts>(),
            |_, _| Ok(()),
        )?;
    }
    if !kind.imports(unversioned(PUBLISH_TARGET)) {
        linker.instance(PUBLISH_TARGET)?.resource(
            "target",
            ResourceType::host::<PublishTarget>(),
            |_, _| Ok(()),
        )?;
    }
    Ok(())
}

fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(name, _)| name)
}

fn read_wasm(plugin: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
    std::fs::read(path).map_err(|source| PluginError::ReadWasm {
        plugin: plugin.to_owned(),
        path: path.to_owned(),
        source,
    })
}

fn wrong_world(spec: &PluginSpec, kind: Kind, error: &wasmtime::Error) -> PluginError {
    PluginError::WrongWorld {
        plugin: spec.name.clone(),
        kind: kind.name,
        reason: format!("{error:#}"),
    }
}
