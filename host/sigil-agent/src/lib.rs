//! The sigil agent: proves the node's identity to the server (node attestation), keeps the
//! entries it may serve and their X509-SVIDs in sync with the server, and serves workloads
//! on the workload socket after attesting them.
//!
//! [`run`] is the daemon: it loads the plugins (`plugins`), establishes the agent's
//! identity (`startup`: the SVID stored in `data_dir`, see [`storage`] for the files, or
//! node attestation, retried with backoff while the server is unreachable or busy), then
//! hands over to the supervisor (`supervisor`), which runs the sync loop (`sync`, publishing
//! what can be served to `cache`) and serves the SPIFFE Workload API and Envoy SDS through
//! [`sigil_workload::serve`] with [`Workloads`] as the identity source. With
//! `admin_socket_path` set it also serves SPIRE's Delegated Identity API on the admin
//! socket (`admin`).
//!
//! Architecture invariant: private keys are generated in the agent and never leave it except
//! to the attested workload they were issued for; they are never logged, and the agent key is
//! stored 0600.

mod admin;
mod attest;
mod bootstrap;
mod cache;
mod client;
mod error;
mod jwt_cache;
mod k8s;
mod keys;
mod plugins;
mod startup;
pub mod storage;
mod supervisor;
mod sync;
mod workload;
mod x509_cache;

use std::sync::Arc;

use sigil_config::AgentConfig;
use sigil_types::Clock;

pub use error::AgentError;
pub use sync::SYNC_INTERVAL;
pub use workload::{Workload, Workloads};

use crate::plugins::{load_plugins, node_attestor};
use crate::storage::DataDir;

/// Settings given on the command line rather than in the config file.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// `-joinToken`: overrides the config's `join_token`.
    pub join_token: Option<String>,
}

impl RunOptions {
    /// Options with a join token.
    pub fn with_join_token(mut self, token: Option<String>) -> Self {
        self.join_token = token;
        self
    }
}

/// Runs the agent until `shutdown` resolves: attestation (or the stored SVID), the sync loop
/// and the workload socket.
pub async fn run(
    config: AgentConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let clock: Arc<dyn Clock> = Arc::new(sigil_clock::SystemClock);
    let data = DataDir::open(&config.data_dir)?;
    let (plugins, attestors) = load_plugins(&data, &config)?;
    let identity = startup::establish(&config, &options, &data, &plugins, clock.as_ref()).await?;
    supervisor::supervise(&config, identity, data, attestors, clock, shutdown).await
}

/// Compiles the configured plugins into `data_dir`'s artifact cache, and nothing else.
///
/// The binary runs this in a short-lived child process before `run`: compiling with
/// cranelift pages in several MiB of compiler code and leaves its heap behind, which would
/// otherwise stay resident in the daemon for its whole life. The daemon then loads the
/// compiled artifacts (a restart does anyway).
pub fn warm_plugin_cache(config: &AgentConfig) -> Result<(), AgentError> {
    let data = DataDir::open(&config.data_dir)?;
    let (plugins, _) = load_plugins(&data, config)?;
    // A join token only parameterises the plugin; any well-formed one compiles it.
    let options = RunOptions::default().with_join_token(Some("warm-plugin-cache".into()));
    node_attestor(&plugins, config, &options)?;
    Ok(())
}
