//! Workload attestors: the `workload-attestor` world.

use sigil_types::Selector;
use wasmtime::component::Resource;

use crate::bindings::workload::WorkloadAttestorPre;
use crate::call::{Core, run};
use crate::error::PluginError;
use crate::output;
use crate::process::ProcessFacts;
use crate::state::CallState;

/// A loaded workload attestor. Each call gets a fresh instance; the value is cheap to
/// clone and share between threads.
#[derive(Clone)]
pub struct WorkloadAttestor {
    pub(crate) core: Core,
    pub(crate) pre: WorkloadAttestorPre<CallState>,
}

impl WorkloadAttestor {
    /// The configured name: the type of every selector this plugin produces.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Selectors for the process `pid`, read from procfs by the host.
    pub fn attest(&self, pid: u32) -> Result<Vec<Selector>, PluginError> {
        self.attest_process(ProcessFacts::resolve(pid)?)
    }

    /// Selectors for a process whose facts the caller already resolved.
    pub fn attest_process(&self, process: ProcessFacts) -> Result<Vec<Selector>, PluginError> {
        let core = &self.core;
        let mut store = core.store()?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| core.cannot_instantiate(&e))?;
        let values = run(&mut store, core, |store| {
            if let Err(error) =
                instance.call_configure(&mut *store, core.trust_domain.name(), &core.data)?
            {
                return Ok(Err(error));
            }
            let owned = store.data_mut().table.push(process)?;
            let result = instance.call_attest(&mut *store, Resource::new_borrow(owned.rep()));
            store.data_mut().table.delete(owned)?;
            result
        })?
        .map_err(|error| core.failed(&error))?;
        output::selectors(&core.name, &core.limits, &values)
    }

    /// Instantiate and configure once, so a bad `plugin_data` fails at load.
    pub(crate) fn check_configure(&self) -> Result<(), PluginError> {
        self.core.check_configure(&self.pre)
    }
}

impl std::fmt::Debug for WorkloadAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WorkloadAttestor").field(&self.core).finish()
    }
}
