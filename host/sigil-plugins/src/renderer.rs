//! SPIFFE-ID renderers: the `id-renderer` world, run on the fuel-metered engine.

use sigil_types::SpiffeId;

use crate::bindings::renderer::IdRendererPre;
use crate::bindings::renderer::sigil::plugin::render_types::RenderError;
use crate::call::{Core, run};
use crate::error::PluginError;
use crate::output;
use crate::state::CallState;

pub use crate::bindings::renderer::sigil::plugin::render_types::{
    NodeSpec, ObjectMeta, PodSpec, RenderInput,
};

/// A loaded SPIFFE-ID renderer. Each call gets a fresh instance; the value is cheap to
/// clone and share between threads.
#[derive(Clone)]
pub struct IdRenderer {
    pub(crate) core: Core,
    pub(crate) pre: IdRendererPre<CallState>,
}

impl IdRenderer {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The SPIFFE ID for `input`, or `None` when the plugin has none for it. A returned ID
    /// is valid and in the configured trust domain, or the call fails with
    /// [`PluginError::InvalidOutput`].
    pub fn render(&self, input: &RenderInput) -> Result<Option<SpiffeId>, PluginError> {
        let core = &self.core;
        let mut store = core.store()?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| core.cannot_instantiate(&e))?;
        let rendered = run(&mut store, core, |store| {
            if let Err(error) =
                instance.call_configure(&mut *store, core.trust_domain.name(), &core.data)?
            {
                return Ok(Err(core.failed(&error)));
            }
            Ok(instance
                .call_render(&mut *store, input)?
                .map_err(|e| core.failed_with(describe_render(&e))))
        })??;
        rendered
            .map(|id| output::spiffe_id(&core.name, &core.trust_domain, &id))
            .transpose()
    }

    /// Instantiate and configure once, so a bad `plugin_data` fails at load.
    pub(crate) fn check_configure(&self) -> Result<(), PluginError> {
        self.core.check_configure(&self.pre)
    }
}

fn describe_render(error: &RenderError) -> String {
    match error {
        RenderError::Template(m) => format!("template: {m}"),
        RenderError::Input(m) => format!("input: {m}"),
        RenderError::Internal(m) => format!("internal: {m}"),
    }
}

impl std::fmt::Debug for IdRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdRenderer").field(&self.core).finish()
    }
}
