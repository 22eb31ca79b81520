//! Bundle publishers: the `bundle-publisher` world, and the publish targets the operator
//! grants them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sigil_types::Bundle;
use wasmtime::component::Resource;

use crate::bindings::publisher::BundlePublisherPre;
use crate::bindings::publisher::sigil::plugin::bundle_types::Bundle as WitBundle;
use crate::call::{Core, run};
use crate::capabilities::KubernetesAccess;
use crate::error::PluginError;
use crate::state::CallState;

/// Where a bundle publisher may write: granted by the operator's configuration, never
/// chosen by the plugin.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PublishTarget {
    /// One file, replaced atomically (a temporary file in the same directory, renamed).
    File(PathBuf),
    /// One key of a Kubernetes ConfigMap, written by server-side apply (the ConfigMap is
    /// created when missing; other keys are left alone).
    ConfigMap(ConfigMapTarget),
}

/// A ConfigMap key in a cluster, with the server's access to that cluster.
#[derive(Debug, Clone)]
pub struct ConfigMapTarget {
    /// The operator's name for this destination (the key in `clusters`), the plugin's `id`.
    pub id: String,
    /// The cluster's API server.
    pub access: KubernetesAccess,
    /// The ConfigMap's namespace.
    pub namespace: String,
    /// The ConfigMap's name.
    pub name: String,
    /// The key the bundle is written under.
    pub key: String,
}

impl PublishTarget {
    /// What the plugin's `describe` returns.
    pub fn describe(&self) -> String {
        match self {
            PublishTarget::File(path) => format!("file {}", path.display()),
            PublishTarget::ConfigMap(target) => format!(
                "configmap {}/{} key {} ({})",
                target.namespace, target.name, target.key, target.id
            ),
        }
    }

    /// What the plugin's `id` returns.
    pub fn id(&self) -> &str {
        match self {
            PublishTarget::File(_) => "",
            PublishTarget::ConfigMap(target) => &target.id,
        }
    }

    /// Replace the target's contents.
    pub(crate) fn write(&self, contents: &[u8]) -> Result<(), String> {
        match self {
            PublishTarget::File(path) => replace_file(path, contents)
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            PublishTarget::ConfigMap(target) => {
                let text = std::str::from_utf8(contents)
                    .map_err(|_| "a ConfigMap's data must be text (UTF-8)".to_owned())?;
                target
                    .access
                    .apply_config_map(&target.namespace, &target.name, &target.key, text)
                    .map_err(|e| format!("{}: {e}", self.describe()))
            }
        }
    }
}

/// A loaded bundle publisher. Each call gets a fresh instance; the value is cheap to clone
/// and share between threads.
#[derive(Clone)]
pub struct BundlePublisher {
    pub(crate) core: Core,
    pub(crate) pre: BundlePublisherPre<CallState>,
}

impl BundlePublisher {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Publish `bundle` to `target`.
    pub fn publish(&self, bundle: &Bundle, target: &PublishTarget) -> Result<(), PluginError> {
        let core = &self.core;
        let rendered = WitBundle {
            trust_domain: bundle.trust_domain.name().to_owned(),
            sequence_number: bundle.sequence_number,
            refresh_hint: bundle.refresh_hint,
            x509_authorities: bundle
                .x509_authorities
                .iter()
                .map(|a| a.der.clone())
                .collect(),
            x509_authorities_pem: bundle.x509_authorities_pem(),
            spiffe_bundle_json: bundle
                .to_jwks()
                .map_err(|source| PluginError::BadBundle { source })?,
        };
        let mut store = core.store()?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| core.cannot_instantiate(&e))?;
        run(&mut store, core, |store| {
            if let Err(error) =
                instance.call_configure(&mut *store, core.trust_domain.name(), &core.data)?
            {
                return Ok(Err(error));
            }
            let owned = store.data_mut().table.push(target.clone())?;
            let result =
                instance.call_publish(&mut *store, &rendered, Resource::new_borrow(owned.rep()));
            store.data_mut().table.delete(owned)?;
            result
        })?
        .map_err(|error| core.failed(&error))
    }

    /// Instantiate and configure once, so a bad `plugin_data` fails at load.
    pub(crate) fn check_configure(&self) -> Result<(), PluginError> {
        self.core.check_configure(&self.pre)
    }
}

impl std::fmt::Debug for BundlePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BundlePublisher").field(&self.core).finish()
    }
}

/// Write `contents` to a temporary file next to `path`, then rename it over `path`, so a
/// reader sees the old bundle or the new one, never half of one.
fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".sigil-{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            // Best effort: the temporary file is ours and useless now.
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}
