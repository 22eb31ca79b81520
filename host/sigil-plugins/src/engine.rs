//! One wasmtime `Engine` per profile: I/O-capable plugins run with epoch interruption,
//! pure renderers with fuel. Each engine uses the pooling allocator when the address-space
//! probe (building the pool) passes, and allocates on demand otherwise. Either way its
//! [`Capacity`] admits at most as many calls at once as the pool has instances.

use std::sync::Arc;
use std::thread;

use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::capacity::Capacity;
use crate::error::PluginError;
use crate::limits::{EPOCH_TICK, HostConfig};

/// How an engine stops runaway code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Epoch interruption: wall-clock budget, for plugins that make host calls.
    Io,
    /// Fuel: deterministic budget, for pure plugins.
    Pure,
}

/// An engine, how its instances are allocated, and the queue of calls for them.
#[derive(Clone)]
pub(crate) struct ProfileEngine {
    pub(crate) engine: Engine,
    pub(crate) profile: Profile,
    pub(crate) pooling: bool,
    pub(crate) capacity: Arc<Capacity>,
}

impl ProfileEngine {
    pub(crate) fn new(profile: Profile, host: &HostConfig) -> Result<Self, PluginError> {
        if host.pooling {
            let mut config = base_config(profile);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(host)));
            match Engine::new(&config) {
                Ok(engine) => return Self::started(profile, engine, true, host),
                Err(error) => tracing::warn!(
                    ?profile,
                    error = %error,
                    "pooling allocator unavailable, allocating plugin instances on demand"
                ),
            }
        }
        let engine =
            Engine::new(&base_config(profile)).map_err(|e| PluginError::Host(e.to_string()))?;
        Self::started(profile, engine, false, host)
    }

    fn started(
        profile: Profile,
        engine: Engine,
        pooling: bool,
        host: &HostConfig,
    ) -> Result<Self, PluginError> {
        if profile == Profile::Io {
            // Without the ticker no epoch deadline ever passes: calls would run unbounded.
            start_epoch_ticker(engine.weak())
                .map_err(|e| PluginError::Host(format!("cannot start the epoch ticker: {e}")))?;
        }
        Ok(ProfileEngine {
            engine,
            profile,
            pooling,
            capacity: Capacity::new(host),
        })
    }
}

impl std::fmt::Debug for ProfileEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileEngine")
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

fn base_config(profile: Profile) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.max_wasm_stack(512 << 10);
    match profile {
        Profile::Io => {
            config.epoch_interruption(true);
        }
        Profile::Pure => {
            config.consume_fuel(true);
        }
    }
    config
}

/// Bytes of each linear memory and table kept resident between instances of a pool slot.
const KEEP_RESIDENT: usize = 256 << 10;
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// The pool: one slot per concurrent call ([`Capacity`] admits no more), each with room for the components a Rust
/// `wasm32-wasip2` toolchain produces (a few core instances, memories and tables).
fn pool(host: &HostConfig) -> PoolingAllocationConfig {
    let calls = host.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        .total_core_instances(calls.saturating_mul(8))
        .total_memories(calls.saturating_mul(2))
        .total_tables(calls.saturating_mul(8))
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_core_instances_per_component(8)
        .max_memory_size(host.memory_ceiling)
        // Reset the start of each memory by memset when an instance is freed instead of
        // unmapping it, so the next call does not fault those pages in again: page faults
        // and unmapping were half of a renderer call (BENCHMARKS.md). The built-ins link a
        // 128 KiB stack (plugins/.cargo/config.toml) so what a call touches fits here.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    pool
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: EngineWeak) -> std::io::Result<()> {
    thread::Builder::new()
        .name("sigil-plugin-epoch".into())
        .spawn(move || {
            loop {
                thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}
