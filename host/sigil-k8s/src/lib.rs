//! Registration from Kubernetes: sigil's built-in counterpart of spire-controller-manager.
//!
//! It reads the same objects (`ClusterSPIFFEID`, `ClusterStaticEntry`,
//! `ClusterFederatedTrustDomain`, and pods, nodes, namespaces, endpoints) and the same
//! configuration file, computes the same entries and federation relationships, and applies
//! them through the server's entry and trust domain APIs on its admin socket, so existing
//! manifests apply unchanged and the controller runs embedded or standalone alike.
//!
//! - [`crd`]: the resources, with upstream's field names.
//! - [`config`]: the `ControllerManagerConfig` file.
//! - [`core`]: the pure reconcile (declared entries, diff, statuses).
//! - [`federation`]: the pure reconcile of federation relationships.
//! - [`controller`]: watchers, debounce, periodic resync, entry API calls, status writes.

pub mod config;
pub mod controller;
pub mod core;
pub mod crd;
pub mod entryapi;
pub mod federation;
pub mod kubeclient;
pub mod render;
pub mod selector;

pub use config::{ConfigError, ControllerConfig};
pub use controller::{Controller, ControllerError};
pub use entryapi::EntryApi;
pub use render::PluginTemplates;
