//! wasmtime bindings generated from `sdk/wit/`, one module per world, and the host side
//! of the imports every world shares: `log` and the `workload-process` resource.

use wasmtime::component::Resource;

use crate::process::{DeadlinePassed, ProcessFacts};
use crate::publisher::PublishTarget;
use crate::state::{CallState, MAX_LOG_MESSAGE, truncate};

/// The `workload-attestor` world.
pub(crate) mod workload {
    wasmtime::component::bindgen!({
        world: "workload-attestor",
        path: "../../sdk/wit",
        imports: { default: trappable },
        with: {
            "sigil:plugin/workload-facts.workload-process": crate::process::ProcessFacts,
        },
    });
}

/// The `id-renderer` world.
pub(crate) mod renderer {
    wasmtime::component::bindgen!({
        world: "id-renderer",
        path: "../../sdk/wit",
        imports: { default: trappable },
        with: {
            "sigil:plugin/types": super::workload::sigil::plugin::types,
            "sigil:plugin/log": super::workload::sigil::plugin::log,
        },
    });
}

/// The `node-attestor-server` world.
pub(crate) mod node_server {
    wasmtime::component::bindgen!({
        world: "node-attestor-server",
        path: "../../sdk/wit",
        imports: { default: trappable },
        with: {
            "sigil:plugin/types": super::workload::sigil::plugin::types,
            "sigil:plugin/log": super::workload::sigil::plugin::log,
        },
    });
}

/// The `node-attestor-agent` world.
pub(crate) mod node_agent {
    wasmtime::component::bindgen!({
        world: "node-attestor-agent",
        path: "../../sdk/wit",
        imports: { default: trappable },
        with: {
            "sigil:plugin/types": super::workload::sigil::plugin::types,
            "sigil:plugin/log": super::workload::sigil::plugin::log,
            "sigil:plugin/granted-files": super::node_server::sigil::plugin::granted_files,
            "sigil:plugin/x509": super::node_server::sigil::plugin::x509,
            "sigil:plugin/http-client": super::node_server::sigil::plugin::http_client,
        },
    });
}

/// The `bundle-publisher` world.
pub(crate) mod publisher {
    wasmtime::component::bindgen!({
        world: "bundle-publisher",
        path: "../../sdk/wit",
        imports: { default: trappable },
        with: {
            "sigil:plugin/types": super::workload::sigil::plugin::types,
            "sigil:plugin/log": super::workload::sigil::plugin::log,
            "sigil:plugin/http-client": super::node_server::sigil::plugin::http_client,
            "sigil:plugin/publish-target.target": crate::publisher::PublishTarget,
        },
    });
}

use node_server::sigil::plugin::node_attestation;
use publisher::sigil::plugin::{bundle_types, publish_target};
use renderer::sigil::plugin::render_types;
use workload::sigil::plugin::{log, types, workload_facts};

impl types::Host for CallState {}

impl render_types::Host for CallState {}

impl node_attestation::Host for CallState {}

impl bundle_types::Host for CallState {}

impl publish_target::Host for CallState {}

impl publish_target::HostTarget for CallState {
    fn describe(&mut self, target: Resource<PublishTarget>) -> wasmtime::Result<String> {
        Ok(self.table.get(&target)?.describe())
    }

    fn id(&mut self, target: Resource<PublishTarget>) -> wasmtime::Result<String> {
        Ok(self.table.get(&target)?.id().to_owned())
    }

    fn write(
        &mut self,
        target: Resource<PublishTarget>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::PluginError>> {
        let max_bytes = self.max_publish_bytes;
        let target = self.table.get(&target)?.clone();
        if contents.len() > max_bytes {
            return Ok(Err(types::PluginError::InvalidArgument(format!(
                "{} bytes are more than the publish limit of {}",
                contents.len(),
                max_bytes
            ))));
        }
        Ok(self
            .io(|_| target.write(&contents))
            .map_err(types::PluginError::Unavailable))
    }

    fn drop(&mut self, target: Resource<PublishTarget>) -> wasmtime::Result<()> {
        self.table.delete(target)?;
        Ok(())
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let plugin = &*self.plugin;
        let message = truncate(&message, MAX_LOG_MESSAGE);
        match level {
            log::Level::Trace => tracing::trace!(plugin, message, "plugin log"),
            log::Level::Debug => tracing::debug!(plugin, message, "plugin log"),
            log::Level::Info => tracing::info!(plugin, message, "plugin log"),
            log::Level::Warn => tracing::warn!(plugin, message, "plugin log"),
            log::Level::Error => tracing::error!(plugin, message, "plugin log"),
        }
        Ok(())
    }
}

impl workload_facts::Host for CallState {}

impl workload_facts::HostWorkloadProcess for CallState {
    fn pid(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&process)?.pid())
    }

    fn uid(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&process)?.uid())
    }

    fn user_name(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&process)?.user_name().map(str::to_owned))
    }

    fn gid(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&process)?.gid())
    }

    fn supplementary_gids(
        &mut self,
        process: Resource<ProcessFacts>,
    ) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&process)?.supplementary_gids().to_vec())
    }

    fn group_name(
        &mut self,
        process: Resource<ProcessFacts>,
        gid: u32,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&process)?.group_name(gid).map(str::to_owned))
    }

    fn exe_path(
        &mut self,
        process: Resource<ProcessFacts>,
    ) -> wasmtime::Result<Result<String, types::PluginError>> {
        Ok(self
            .table
            .get(&process)?
            .exe_path()
            .map_err(types::PluginError::Unavailable))
    }

    fn exe_sha256(
        &mut self,
        process: Resource<ProcessFacts>,
    ) -> wasmtime::Result<Result<String, types::PluginError>> {
        let deadline = self.cpu_deadline();
        match self.table.get(&process)?.exe_sha256_until(deadline) {
            Ok(digest) => Ok(digest.map_err(types::PluginError::Unavailable)),
            // Ends the call as if the epoch deadline had passed: CPU budget exceeded.
            Err(DeadlinePassed) => Err(wasmtime::Error::from(wasmtime::Trap::Interrupt)),
        }
    }

    fn cgroups(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&process)?.cgroups().to_vec())
    }

    fn container_id(
        &mut self,
        process: Resource<ProcessFacts>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&process)?.container_id())
    }

    fn pod_uid(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&process)?.pod_uid())
    }

    fn drop(&mut self, process: Resource<ProcessFacts>) -> wasmtime::Result<()> {
        self.table.delete(process)?;
        Ok(())
    }
}

/// `case: message` for a plugin's own error.
pub(crate) fn describe(error: &types::PluginError) -> String {
    match error {
        types::PluginError::InvalidArgument(m) => format!("invalid-argument: {m}"),
        types::PluginError::PermissionDenied(m) => format!("permission-denied: {m}"),
        types::PluginError::NotFound(m) => format!("not-found: {m}"),
        types::PluginError::Unavailable(m) => format!("unavailable: {m}"),
        types::PluginError::Internal(m) => format!("internal: {m}"),
    }
}
