//! What a plugin may import. Checked at load, before anything is linked, so a plugin that
//! asks for more than its world grants is refused with the import's name.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::capabilities::Grants;
use crate::error::PluginError;

/// The WASI interfaces linked for every plugin, all backed by the deny-all context: no
/// preopened directories (so `wasi:filesystem` reaches nothing), no environment, no
/// arguments, no stdin; stdout and stderr go to the log. `wasi:sockets` and `wasi:http`
/// are never granted.
const WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// A plugin kind: its world's name, the `sigil:plugin` interfaces every plugin of it gets,
/// and the capabilities its plugins may import when granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) name: &'static str,
    sigil_imports: &'static [&'static str],
    capabilities: &'static [&'static str],
}

/// `workload-attestor`: `log` and the `workload-process` resource.
pub(crate) const WORKLOAD_ATTESTOR: Kind = Kind {
    name: "workload-attestor",
    sigil_imports: &[
        "sigil:plugin/types",
        "sigil:plugin/log",
        "sigil:plugin/workload-facts",
    ],
    capabilities: &["sigil:plugin/pod-lookup"],
};

/// `id-renderer`: `log` only (and the type-only interfaces).
pub(crate) const ID_RENDERER: Kind = Kind {
    name: "id-renderer",
    sigil_imports: &[
        "sigil:plugin/types",
        "sigil:plugin/log",
        "sigil:plugin/render-types",
    ],
    capabilities: &[],
};

/// `node-attestor-server`: `log`, and the capabilities to check what a node presents.
pub(crate) const NODE_ATTESTOR_SERVER: Kind = Kind {
    name: "node-attestor-server",
    sigil_imports: &[
        "sigil:plugin/types",
        "sigil:plugin/log",
        "sigil:plugin/node-attestation",
    ],
    capabilities: &[
        "sigil:plugin/granted-files",
        "sigil:plugin/x509",
        "sigil:plugin/join-tokens",
        "sigil:plugin/http-client",
        "sigil:plugin/kubernetes",
    ],
};

/// `node-attestor-agent`: `log`, and the capabilities to prove what the node is.
pub(crate) const NODE_ATTESTOR_AGENT: Kind = Kind {
    name: "node-attestor-agent",
    sigil_imports: &["sigil:plugin/types", "sigil:plugin/log"],
    capabilities: &[
        "sigil:plugin/granted-files",
        "sigil:plugin/x509",
        "sigil:plugin/http-client",
    ],
};

/// `bundle-publisher`: `log` and the granted `publish-target`.
pub(crate) const BUNDLE_PUBLISHER: Kind = Kind {
    name: "bundle-publisher",
    sigil_imports: &[
        "sigil:plugin/types",
        "sigil:plugin/log",
        "sigil:plugin/bundle-types",
        "sigil:plugin/publish-target",
    ],
    capabilities: &["sigil:plugin/http-client"],
};

impl Kind {
    /// Whether this kind's world imports the `sigil:plugin` interface `name`
    /// (`sigil:plugin/render-types`, no version), granted or not.
    pub(crate) fn imports(&self, name: &str) -> bool {
        self.sigil_imports.contains(&name) || self.capabilities.contains(&name)
    }
}

/// Refuse `component` if it imports anything `kind` does not grant, or a capability of
/// `kind` that `grants` does not give this plugin; the error names the first such import.
pub(crate) fn check_imports(
    plugin: &str,
    kind: Kind,
    grants: &Grants,
    engine: &Engine,
    component: &Component,
) -> Result<(), PluginError> {
    let component_type = component.component_type();
    for (import, item) in component_type.imports(engine) {
        if is_type_only(engine, &item.ty) || is_granted(kind, import) {
            continue;
        }
        let unversioned = unversioned(import);
        if kind.capabilities.contains(&unversioned) {
            if grants.grants(unversioned) == Some(true) {
                continue;
            }
            return Err(PluginError::CapabilityNotGranted {
                plugin: plugin.to_owned(),
                import: import.to_owned(),
                how: Grants::how_to_grant(unversioned),
            });
        }
        return Err(PluginError::UngrantedImport {
            plugin: plugin.to_owned(),
            kind: kind.name,
            import: import.to_owned(),
        });
    }
    Ok(())
}

fn unversioned(import: &str) -> &str {
    import.split_once('@').map_or(import, |(name, _)| name)
}

/// Whether an import is an instance that exports types and nothing else. Such an import
/// grants nothing, and every plugin built with `sigil-pdk` has some: the SDK holds the
/// bindings of every world, so a component imports the type-only interfaces of the other
/// worlds too (`render-types` in an attestor, the bare `workload-process` type in a
/// renderer). The linkers define those (see `PluginHost::new`).
/// A bare type import (a world's `use` of a resource type) grants nothing either.
fn is_type_only(engine: &Engine, item: &ComponentItem) -> bool {
    match item {
        ComponentItem::Type(_) | ComponentItem::Resource(_) => true,
        ComponentItem::ComponentInstance(instance) => {
            instance.exports(engine).all(|(_, export)| {
                matches!(
                    export.ty,
                    ComponentItem::Type(_) | ComponentItem::Resource(_)
                )
            })
        }
        _ => false,
    }
}

/// Whether `import` (`namespace:package/interface@version`) is granted to `kind`. Any
/// version is accepted here; the linker then checks semver compatibility.
pub(crate) fn is_granted(kind: Kind, import: &str) -> bool {
    let unversioned = unversioned(import);
    WASI.contains(&unversioned) || kind.sigil_imports.contains(&unversioned)
}
