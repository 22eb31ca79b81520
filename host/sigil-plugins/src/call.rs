//! One call into a plugin: an instance slot from the engine's queue, a fresh `Store` with
//! the call's limits, and the mapping of whatever stopped the call to the error a user can
//! act on.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sigil_types::TrustDomain;
use wasmtime::{
    AsContext, AsContextMut, Store, StoreContext, StoreContextMut, Trap, UpdateDeadline,
};

use crate::bindings::describe;
use crate::bindings::workload::sigil::plugin::types::PluginError as WitPluginError;
use crate::capabilities::{Grants, HttpClients};
use crate::capacity::Slot;
use crate::engine::{Profile, ProfileEngine};
use crate::error::PluginError;
use crate::limits::{Limits, ticks_for};
use crate::state::CallState;

/// What every loaded plugin keeps: its name, trust domain, `plugin_data`, limits, and the
/// engine of its profile.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) name: Arc<str>,
    pub(crate) trust_domain: TrustDomain,
    pub(crate) data: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) engine: ProfileEngine,
    pub(crate) profile: Profile,
    pub(crate) grants: Arc<Grants>,
    pub(crate) http: HttpClients,
}

impl Core {
    /// A fresh store for one call, once the engine's queue admits it: waits for an instance
    /// slot, or fails with [`PluginError::Saturated`].
    pub(crate) fn store(&self) -> Result<CallStore, PluginError> {
        let slot = self.engine.capacity.acquire(&self.name)?;
        let state = CallState::new(
            self.name.clone(),
            &self.limits,
            self.grants.clone(),
            self.http.clone(),
        );
        let store = new_store(&self.engine, self.profile, state, &self.limits)?;
        Ok(CallStore { store, _slot: slot })
    }

    /// Instantiates `pre` in a fresh store and calls its `configure` once, so a bad
    /// `plugin_data` fails when the plugin is loaded, not at its first use.
    pub(crate) fn check_configure<P: WorldPre>(&self, pre: &P) -> Result<(), PluginError> {
        let mut store = self.store()?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| self.cannot_instantiate(&e))?;
        run(&mut store, self, |store| {
            P::call_configure(&instance, store, self.trust_domain.name(), &self.data)
        })?
        .map_err(|error| self.failed(&error))
    }

    /// Instantiation failed: not the plugin's fault, and not a full pool either (the
    /// queue admits no more calls than the pool has instances).
    pub(crate) fn cannot_instantiate(&self, error: &wasmtime::Error) -> PluginError {
        PluginError::Host(format!(
            "plugin {}: cannot instantiate: {error:#}",
            self.name
        ))
    }

    /// The plugin returned an error of its own.
    pub(crate) fn failed(&self, error: &WitPluginError) -> PluginError {
        self.failed_with(describe(error))
    }

    /// The plugin returned an error of its own, already described.
    pub(crate) fn failed_with(&self, reason: String) -> PluginError {
        PluginError::Plugin {
            plugin: self.name.to_string(),
            reason,
        }
    }
}

/// The store of one call and the instance slot it holds. Fields drop in order: the store
/// (and with it the instance, back to the pool) before the slot goes to the next call.
pub(crate) struct CallStore {
    store: Store<CallState>,
    _slot: Slot,
}

impl Deref for CallStore {
    type Target = Store<CallState>;

    fn deref(&self) -> &Store<CallState> {
        &self.store
    }
}

impl DerefMut for CallStore {
    fn deref_mut(&mut self) -> &mut Store<CallState> {
        &mut self.store
    }
}

impl AsContext for CallStore {
    type Data = CallState;

    fn as_context(&self) -> StoreContext<'_, CallState> {
        self.store.as_context()
    }
}

impl AsContextMut for CallStore {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, CallState> {
        self.store.as_context_mut()
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("trust_domain", &self.trust_domain)
            .field("profile", &self.profile)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How long creating an instance (the host's allocation and the component's start
/// functions) may take, measured like the CPU budget, before it is interrupted.
const INSTANTIATION_LIMIT: Duration = Duration::from_secs(2);

/// A fresh store: the deny-all WASI context, the memory limiter, and the CPU budget of the
/// engine's profile (epoch deadline or fuel).
fn new_store(
    engine: &ProfileEngine,
    profile: Profile,
    state: CallState,
    limits: &Limits,
) -> Result<Store<CallState>, PluginError> {
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limiter);
    match profile {
        Profile::Io => {
            // At each deadline, compare the plugin's own running time (host I/O left out)
            // with the budget: stop it, or set the next deadline at the budget's end.
            let budget = limits.cpu;
            store.set_epoch_deadline(limits.epoch_ticks());
            store.epoch_deadline_callback(move |context| {
                let state = context.data();
                let limit = if state.in_call {
                    budget
                } else {
                    budget.max(INSTANTIATION_LIMIT)
                };
                match limit.checked_sub(state.cpu_used()) {
                    Some(left) if !left.is_zero() => Ok(UpdateDeadline::Continue(ticks_for(left))),
                    _ => Err(wasmtime::Error::from(Trap::Interrupt)),
                }
            });
            store.data_mut().cpu_budget = Some(budget);
            store.data_mut().track_run_delay();
        }
        Profile::Pure => {
            store
                .set_fuel(limits.fuel)
                .map_err(|e| PluginError::Host(format!("cannot set fuel: {e}")))?;
        }
    }
    Ok(store)
}

/// Run `call` on `store` (the CPU budget starts here), flush what the plugin printed to the
/// log, and turn a failure into the error of the limit it hit, or a trap carrying the
/// plugin's name and its last words on stderr.
pub(crate) fn run<R>(
    store: &mut Store<CallState>,
    core: &Core,
    call: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let (profile, limits) = (core.profile, &core.limits);
    store.data_mut().start_budget();
    if profile == Profile::Io {
        store.set_epoch_deadline(limits.epoch_ticks());
    }
    let result = call(store);
    let stderr = store.data().flush_output();
    let error = match result {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let plugin = store.data().plugin.to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt | Trap::OutOfFuel) => {
            let budget = match profile {
                Profile::Io => format!("{} ms", limits.cpu.as_millis()),
                Profile::Pure => format!("{} fuel", limits.fuel),
            };
            return Err(PluginError::CpuBudgetExceeded { plugin, budget });
        }
        _ if store.data().limiter.hit => {
            return Err(PluginError::MemoryLimit {
                plugin,
                limit_bytes: limits.memory_bytes,
            });
        }
        _ => {}
    }
    let mut reason = format!("{error:#}");
    if !stderr.is_empty() {
        reason.push_str("; stderr: ");
        reason.push_str(&stderr);
    }
    Err(PluginError::Trap { plugin, reason })
}

/// What every world's generated `*Pre` offers in the same shape: a fresh instance and the
/// `configure` export each world has.
pub(crate) trait WorldPre {
    /// The instance type the world's bindings generate.
    type Instance;

    /// A fresh instance in `store`.
    fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Self::Instance>;

    /// The world's `configure` export.
    fn call_configure(
        instance: &Self::Instance,
        store: &mut Store<CallState>,
        trust_domain: &str,
        config: &str,
    ) -> wasmtime::Result<Result<(), WitPluginError>>;
}

macro_rules! world_pre {
    ($($pre:ty => $instance:ty),* $(,)?) => {$(
        impl WorldPre for $pre {
            type Instance = $instance;

            fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<$instance> {
                <$pre>::instantiate(self, store)
            }

            fn call_configure(
                instance: &$instance,
                store: &mut Store<CallState>,
                trust_domain: &str,
                config: &str,
            ) -> wasmtime::Result<Result<(), WitPluginError>> {
                instance.call_configure(store, trust_domain, config)
            }
        }
    )*};
}

world_pre! {
    crate::bindings::workload::WorkloadAttestorPre<CallState> => crate::bindings::workload::WorkloadAttestor,
    crate::bindings::renderer::IdRendererPre<CallState> => crate::bindings::renderer::IdRenderer,
    crate::bindings::node_server::NodeAttestorServerPre<CallState> => crate::bindings::node_server::NodeAttestorServer,
    crate::bindings::node_agent::NodeAttestorAgentPre<CallState> => crate::bindings::node_agent::NodeAttestorAgent,
    crate::bindings::publisher::BundlePublisherPre<CallState> => crate::bindings::publisher::BundlePublisher,
}
