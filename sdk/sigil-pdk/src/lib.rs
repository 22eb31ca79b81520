//! Guest SDK for sigil plugins.
//!
//! A plugin is a Rust `cdylib` built for `wasm32-wasip2`. Its author implements one trait,
//! [`WorkloadAttestor`], [`IdRenderer`], [`NodeAttestorServer`], [`NodeAttestorAgent`] or
//! [`BundlePublisher`], and calls the matching export macro ([`export_workload_attestor!`],
//! [`export_id_renderer!`], [`export_node_attestor_server!`], [`export_node_attestor_agent!`],
//! [`export_bundle_publisher!`]). The WIT package the traits stand
//! for is `sigil:plugin@1.0.0` in `sdk/wit/`; its comments say what the host guarantees.
//!
//! The host instantiates a fresh plugin instance for every call and calls `configure` on it
//! first, so the value built by `configure` lives for exactly one call.
//!
//! ```no_run
//! use sigil_pdk::{PluginError, WorkloadAttestor, WorkloadProcess};
//!
//! struct Uid;
//!
//! impl WorkloadAttestor for Uid {
//!     fn configure(_trust_domain: &str, _config: &str) -> Result<Self, PluginError> {
//!         Ok(Uid)
//!     }
//!
//!     fn attest(&self, process: &WorkloadProcess) -> Result<Vec<String>, PluginError> {
//!         Ok(vec![format!("uid:{}", process.uid())])
//!     }
//! }
//!
//! sigil_pdk::export_workload_attestor!(Uid);
//! ```

mod bindings;
mod capabilities;
pub mod config;
pub mod log;

pub use capabilities::{files, http, join_tokens, kubernetes, pods, x509};

pub use bindings::node_server::sigil::plugin::node_attestation::{
    AgentAttributes, Challenge, Step,
};
pub use bindings::publisher::sigil::plugin::bundle_types::Bundle;
pub use bindings::publisher::sigil::plugin::publish_target::Target;
pub use bindings::renderer::sigil::plugin::render_types::{
    NodeSpec, ObjectMeta, PodSpec, RenderError, RenderInput,
};
pub use bindings::workload::sigil::plugin::types::PluginError;
pub use bindings::workload::sigil::plugin::workload_facts::WorkloadProcess;

/// A workload attestor: selector values for the process under attestation.
///
/// Return values without the selector type (`uid:1000`, not `unix:uid:1000`): the host adds
/// the configured plugin name as the type.
pub trait WorkloadAttestor: Sized + 'static {
    /// Build the plugin from its trust domain and its `plugin_data` text.
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError>;

    /// Selector values for `process`.
    fn attest(&self, process: &WorkloadProcess) -> Result<Vec<String>, PluginError>;
}

/// A SPIFFE-ID renderer: a pure function from a pod's facts to a SPIFFE ID.
pub trait IdRenderer: Sized + 'static {
    /// Build the plugin from its trust domain and its `plugin_data` text.
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError>;

    /// The SPIFFE ID for `input`, or `None` when the plugin has none for it.
    fn render(&self, input: &RenderInput) -> Result<Option<String>, RenderError>;
}

/// Export a [`WorkloadAttestor`] implementation as the plugin's `workload-attestor` world.
#[macro_export]
macro_rules! export_workload_attestor {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SIGIL_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct SigilExport;

            impl $crate::__private::workload::Guest for SigilExport {
                fn configure(
                    trust_domain: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    let plugin =
                        <$plugin as $crate::WorkloadAttestor>::configure(&trust_domain, &config)?;
                    SIGIL_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn attest(
                    process: &$crate::WorkloadProcess,
                ) -> ::std::result::Result<::std::vec::Vec<::std::string::String>, $crate::PluginError>
                {
                    SIGIL_PLUGIN.with(|slot| match &*slot.borrow() {
                        ::std::option::Option::Some(plugin) => {
                            <$plugin as $crate::WorkloadAttestor>::attest(plugin, process)
                        }
                        ::std::option::Option::None => ::std::result::Result::Err(
                            $crate::__private::not_configured(),
                        ),
                    })
                }
            }

            $crate::__private::export_workload!(SigilExport with_types_in $crate::__private::workload);
        };
    };
}

/// Export an [`IdRenderer`] implementation as the plugin's `id-renderer` world.
#[macro_export]
macro_rules! export_id_renderer {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SIGIL_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct SigilExport;

            impl $crate::__private::renderer::Guest for SigilExport {
                fn configure(
                    trust_domain: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    let plugin =
                        <$plugin as $crate::IdRenderer>::configure(&trust_domain, &config)?;
                    SIGIL_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn render(
                    input: $crate::RenderInput,
                ) -> ::std::result::Result<::std::option::Option<::std::string::String>, $crate::RenderError>
                {
                    SIGIL_PLUGIN.with(|slot| match &*slot.borrow() {
                        ::std::option::Option::Some(plugin) => {
                            <$plugin as $crate::IdRenderer>::render(plugin, &input)
                        }
                        ::std::option::Option::None => ::std::result::Result::Err(
                            $crate::RenderError::Internal("plugin not configured".into()),
                        ),
                    })
                }
            }

            $crate::__private::export_renderer!(SigilExport with_types_in $crate::__private::renderer);
        };
    };
}

/// A node attestor, server side: the agent's payload (and answers to challenges) to an
/// agent ID and selectors. The host keeps a challenge's `state` between rounds.
pub trait NodeAttestorServer: Sized + 'static {
    /// Build the plugin from its trust domain and its `plugin_data` text.
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError>;

    /// First round: the agent's payload.
    fn attest(&self, payload: Vec<u8>) -> Result<Step, PluginError>;

    /// Next round: the state of the previous challenge and the agent's answer to it.
    fn resume(&self, state: Vec<u8>, response: Vec<u8>) -> Result<Step, PluginError>;
}

/// A node attestor, agent side: the payload, and answers to the server's challenges.
pub trait NodeAttestorAgent: Sized + 'static {
    /// Build the plugin from its trust domain and its `plugin_data` text.
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError>;

    /// The attestation payload.
    fn payload(&self) -> Result<Vec<u8>, PluginError>;

    /// The answer to one challenge.
    fn answer(&self, challenge: Vec<u8>) -> Result<Vec<u8>, PluginError>;
}

/// Export a [`NodeAttestorServer`] implementation as the plugin's `node-attestor-server` world.
#[macro_export]
macro_rules! export_node_attestor_server {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SIGIL_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            fn with_plugin<R>(
                call: impl FnOnce(&$plugin) -> ::std::result::Result<R, $crate::PluginError>,
            ) -> ::std::result::Result<R, $crate::PluginError> {
                SIGIL_PLUGIN.with(|slot| match &*slot.borrow() {
                    ::std::option::Option::Some(plugin) => call(plugin),
                    ::std::option::Option::None => {
                        ::std::result::Result::Err($crate::__private::not_configured())
                    }
                })
            }

            struct SigilExport;

            impl $crate::__private::node_server::Guest for SigilExport {
                fn configure(
                    trust_domain: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    let plugin =
                        <$plugin as $crate::NodeAttestorServer>::configure(&trust_domain, &config)?;
                    SIGIL_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn attest(
                    payload: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<$crate::Step, $crate::PluginError> {
                    with_plugin(|plugin| <$plugin as $crate::NodeAttestorServer>::attest(plugin, payload))
                }

                fn resume(
                    state: ::std::vec::Vec<u8>,
                    response: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<$crate::Step, $crate::PluginError> {
                    with_plugin(|plugin| {
                        <$plugin as $crate::NodeAttestorServer>::resume(plugin, state, response)
                    })
                }
            }

            $crate::__private::export_node_server!(SigilExport with_types_in $crate::__private::node_server);
        };
    };
}

/// Export a [`NodeAttestorAgent`] implementation as the plugin's `node-attestor-agent` world.
#[macro_export]
macro_rules! export_node_attestor_agent {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SIGIL_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            fn with_plugin<R>(
                call: impl FnOnce(&$plugin) -> ::std::result::Result<R, $crate::PluginError>,
            ) -> ::std::result::Result<R, $crate::PluginError> {
                SIGIL_PLUGIN.with(|slot| match &*slot.borrow() {
                    ::std::option::Option::Some(plugin) => call(plugin),
                    ::std::option::Option::None => {
                        ::std::result::Result::Err($crate::__private::not_configured())
                    }
                })
            }

            struct SigilExport;

            impl $crate::__private::node_agent::Guest for SigilExport {
                fn configure(
                    trust_domain: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    let plugin =
                        <$plugin as $crate::NodeAttestorAgent>::configure(&trust_domain, &config)?;
                    SIGIL_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn payload() -> ::std::result::Result<::std::vec::Vec<u8>, $crate::PluginError> {
                    with_plugin(|plugin| <$plugin as $crate::NodeAttestorAgent>::payload(plugin))
                }

                fn answer(
                    challenge: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::PluginError> {
                    with_plugin(|plugin| <$plugin as $crate::NodeAttestorAgent>::answer(plugin, challenge))
                }
            }

            $crate::__private::export_node_agent!(SigilExport with_types_in $crate::__private::node_agent);
        };
    };
}

/// A bundle publisher: writes the trust bundle to the target the operator granted.
pub trait BundlePublisher: Sized + 'static {
    /// Build the plugin from its trust domain and its `plugin_data` text.
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError>;

    /// Publish `bundle` to `target`.
    fn publish(&self, bundle: &Bundle, target: &Target) -> Result<(), PluginError>;
}

/// Export a [`BundlePublisher`] implementation as the plugin's `bundle-publisher` world.
#[macro_export]
macro_rules! export_bundle_publisher {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SIGIL_PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct SigilExport;

            impl $crate::__private::publisher::Guest for SigilExport {
                fn configure(
                    trust_domain: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    let plugin =
                        <$plugin as $crate::BundlePublisher>::configure(&trust_domain, &config)?;
                    SIGIL_PLUGIN.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(plugin));
                    ::std::result::Result::Ok(())
                }

                fn publish(
                    bundle: $crate::Bundle,
                    target: &$crate::Target,
                ) -> ::std::result::Result<(), $crate::PluginError> {
                    SIGIL_PLUGIN.with(|slot| match &*slot.borrow() {
                        ::std::option::Option::Some(plugin) => {
                            <$plugin as $crate::BundlePublisher>::publish(plugin, &bundle, target)
                        }
                        ::std::option::Option::None => {
                            ::std::result::Result::Err($crate::__private::not_configured())
                        }
                    })
                }
            }

            $crate::__private::export_publisher!(SigilExport with_types_in $crate::__private::publisher);
        };
    };
}

/// Used by the export macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::node_agent::export_node_agent;
    pub use crate::bindings::node_server::export_node_server;
    pub use crate::bindings::publisher::export_publisher;
    pub use crate::bindings::renderer;
    pub use crate::bindings::renderer::export_renderer;
    pub use crate::bindings::workload;
    pub use crate::bindings::workload::export_workload;
    pub use crate::bindings::{node_agent, node_server, publisher};

    /// The error an export returns when the host skipped `configure`.
    pub fn not_configured() -> crate::PluginError {
        crate::PluginError::Internal("plugin not configured".into())
    }
}
