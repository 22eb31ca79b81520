//! The sigil agent: proves the node's identity to the server (node attestation), keeps the
//! entries it may serve and their X509-SVIDs in sync with the server, and serves workloads
//! on the workload socket after attesting them.
//!
//! [`run`] is the daemon: it loads the plugins, attests (retrying with backoff while the
//! server is unreachable or busy; or reuses the SVID stored in `data_dir`, see [`storage`]
//! for the files), starts the sync loop (`sync`) and serves the
//! SPIFFE Workload API and Envoy SDS through [`sigil_workload::serve`] with [`Workloads`] as
//! the identity source. With `admin_socket_path` set it also serves SPIRE's Delegated
//! Identity API on the admin socket (`admin`).
//!
//! Architecture invariant: private keys are generated in the agent and never leave it except
//! to the attested workload they were issued for; they are never logged, and the agent key is
//! stored 0600.

mod admin;
mod attest;
mod bootstrap;
mod client;
mod error;
mod jwt_cache;
mod keys;
pub mod storage;
mod sync;
mod workload;
mod x509_cache;

use std::sync::Arc;

use sigil_config::{AgentConfig, PluginConfig, PluginSource};
use sigil_plugins::{HostConfig, NodeAttestorAgent, PluginHost, PluginSpec, WorkloadAttestor};
use sigil_types::SpiffeId;
use tokio::sync::watch;

pub use error::AgentError;
pub use sync::SYNC_INTERVAL;
pub use workload::{Workload, Workloads};

use crate::client::ServerClient;
use crate::storage::DataDir;
use crate::sync::{Snapshot, Syncer};

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
    let data = DataDir::open(&config.data_dir)?;
    let (plugins, attestors) = load_plugins(&data, &config)?;
    let server_id = SpiffeId::new(&config.trust_domain, "/spire/server")
        .map_err(|e| AgentError::Tls(e.to_string()))?;
    let address = if config.server_address.contains(':') && !config.server_address.starts_with('[')
    {
        // An IPv6 literal.
        format!("[{}]:{}", config.server_address, config.server_port)
    } else {
        format!("{}:{}", config.server_address, config.server_port)
    };
    let client = ServerClient::new(address, server_id)?;

    let stored = data.load_agent_svid()?.filter(|svid| {
        let usable = svid.spiffe_id.is_member_of(&config.trust_domain)
            && svid
                .chain
                .first()
                .and_then(|leaf| sigil_types::x509::validity(leaf).ok())
                .is_some_and(|(_, not_after)| not_after > sync::now());
        if !usable {
            tracing::warn!(spiffe_id = %svid.spiffe_id, "the stored agent SVID is expired or of another trust domain; attesting again");
        }
        usable
    });
    let stored_bundle = data
        .load_bundle()?
        .filter(|b| b.trust_domain == config.trust_domain);
    let (agent, attestor) = match stored {
        Some(svid) => {
            let bundle =
                match &stored_bundle {
                    Some(bundle) => bundle.clone(),
                    None => bootstrap::bootstrap_bundle(&config).await?.ok_or(
                        AgentError::Unsupported {
                            key: "agent.trust_bundle_path",
                            reason: "a stored agent SVID needs a stored or bootstrap bundle".into(),
                        },
                    )?,
                };
            client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
            tracing::info!(spiffe_id = %svid.spiffe_id, reattestable = svid.reattestable, "reusing the stored agent SVID");
            // A join token is spent: only a reattestable agent needs its attestor again.
            let attestor = if svid.reattestable {
                Some(node_attestor(&plugins, &config, &options)?)
            } else {
                None
            };
            (svid, attestor)
        }
        None => {
            let insecure = match bootstrap::bootstrap_bundle(&config).await? {
                Some(bundle) => {
                    client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
                    false
                }
                None => {
                    tracing::warn!(
                        "insecure_bootstrap: the server's certificate chain is not verified for attestation"
                    );
                    true
                }
            };
            let attestor = node_attestor(&plugins, &config, &options)?;
            let svid = attest::attest_retrying(&client, &attestor).await?;
            if insecure {
                // Still on the first connection: from here on, the bundle is the trust.
                let bundle = sync::fetch_bundle(&client, &config.trust_domain).await?;
                client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
                data.store_bundle(&bundle)?;
            }
            data.store_agent_svid(&svid)?;
            tracing::info!(spiffe_id = %svid.spiffe_id, reattestable = svid.reattestable, "node attested");
            let attestor = svid.reattestable.then_some(attestor);
            (svid, attestor)
        }
    };
    client.set_identity(&agent.chain, &agent.key)?;
    client.reconnect();

    let (publish, cache) = watch::channel(Arc::new(Snapshot {
        bundle: stored_bundle,
        ..Snapshot::default()
    }));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            let _ = stop.send(true);
        }
    });
    let wait = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let demand = x509_cache::X509Demand::new(config.x509_svid_cache_max_size);
    let syncer = Syncer {
        client: client.clone(),
        data,
        agent,
        key_type: config.workload_x509_svid_key_type,
        publish,
        attestor,
        demand: demand.clone(),
    };
    // A sync that ends in an error (the server evicted the agent) stops the whole agent.
    let stop_on_eviction = stop.clone();
    let sync_task = tokio::spawn({
        let stopped = wait(stopped.clone());
        async move {
            let synced = syncer.run(stopped).await;
            if synced.is_err() {
                stop_on_eviction.send_replace(true);
            }
            synced
        }
    });
    let health_checks = config.health_checks.clone();
    let health_cache = cache.clone();
    let ready = move || {
        let readiness = health_cache.borrow().readiness(sync::now());
        async move { readiness }
    };
    // A health listener that cannot bind stops the agent: the operator asked for it.
    let health = {
        let (stop, stopped) = (stop.clone(), wait(stopped.clone()));
        async move {
            let served = sigil_daemon::health::serve(&health_checks, ready, stopped).await;
            if served.is_err() {
                stop.send_replace(true);
            }
            served
        }
    };
    let identities = Arc::new(Workloads::new(
        attestors,
        cache,
        client,
        demand,
        config.jwt_svid_cache_max_size,
    ));
    let admin = match &config.admin_socket_path {
        Some(path) => {
            match admin::AdminSocket::bind(path, identities.clone(), &config.authorized_delegates) {
                Ok(admin) => Some(admin),
                Err(error) => {
                    sync_task.abort();
                    return Err(error);
                }
            }
        }
        None => None,
    };
    let admin_task = admin.map(|admin| tokio::spawn(admin.serve(wait(stopped.clone()))));
    let mut workload_config = sigil_workload::WorkloadConfig::default();
    workload_config.default_svid_name = config.sds.default_svid_name.clone();
    workload_config.default_bundle_name = config.sds.default_bundle_name.clone();
    workload_config.default_all_bundles_name = config.sds.default_all_bundles_name.clone();
    workload_config.disable_spiffe_cert_validation = config.sds.disable_spiffe_cert_validation;
    workload_config.allow_unauthenticated_verifiers = config.allow_unauthenticated_verifiers;
    workload_config.limits = sigil_listen::Limits {
        max_connections: config.workload_api_limits.max_connections,
        max_connections_per_uid: config.workload_api_limits.max_connections_per_uid,
        idle_timeout: Some(config.workload_api_limits.idle_timeout),
    };
    tracing::info!(socket = %config.socket_path.display(), "serving workloads");
    // Whatever ends the workload socket (shutdown, eviction, a failure) stops the rest.
    let workload_socket = {
        let (stop, stopped) = (stop.clone(), wait(stopped));
        let socket_path = config.socket_path.clone();
        async move {
            let served =
                sigil_workload::serve(&socket_path, identities, workload_config, stopped).await;
            stop.send_replace(true);
            served
        }
    };
    let (served, health) = tokio::join!(workload_socket, health);
    let admin = match admin_task {
        Some(task) => match task.await {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "the admin socket task failed");
                Ok(())
            }
        },
        None => Ok(()),
    };
    // The sync loop sees the same stop; a short wait collects its error when it was the
    // one that stopped the agent (evicted), without hanging on a call in flight.
    let mut sync_task = sync_task;
    let synced = match tokio::time::timeout(std::time::Duration::from_secs(2), &mut sync_task).await
    {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            sync_task.abort();
            Ok(())
        }
    };
    synced?;
    served?;
    health?;
    admin
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

/// The plugin host (its artifact cache in `data_dir`) and the workload attestors.
fn load_plugins(
    data: &DataDir,
    config: &AgentConfig,
) -> Result<(PluginHost, Vec<WorkloadAttestor>), AgentError> {
    let plugins = PluginHost::new(
        HostConfig::default().with_artifact_cache(data.path().join("plugin-cache")),
    )
    .map_err(|source| AgentError::Plugin {
        name: "(host)".into(),
        source,
    })?;
    let mut attestors = Vec::new();
    for plugin in &config.plugins.workload_attestors {
        let spec = spec(plugin, &plugin.data_text);
        let loaded = plugins
            .load_workload_attestor(&config.trust_domain, &spec)
            .map_err(|source| AgentError::Plugin {
                name: plugin.name.clone(),
                source,
            })?;
        attestors.push(loaded);
    }
    Ok((plugins, attestors))
}

/// The plugin spec of a configured plugin, with `data` as its `plugin_data`.
fn spec(plugin: &PluginConfig, data: &str) -> PluginSpec {
    match &plugin.source {
        PluginSource::Wasm { path, checksum } => {
            let spec = PluginSpec::file(&plugin.name, path, data);
            match checksum {
                Some(sum) => spec.with_checksum(sum),
                None => spec,
            }
        }
        _ => PluginSpec::builtin(&plugin.name, data),
    }
}

/// The node attestor; `join_token` gets the token (`-joinToken`, else `join_token`) as its
/// `plugin_data`.
fn node_attestor(
    plugins: &PluginHost,
    config: &AgentConfig,
    options: &RunOptions,
) -> Result<NodeAttestorAgent, AgentError> {
    let plugin = &config.plugins.node_attestor;
    let data = if plugin.name == "join_token" {
        let token = options
            .join_token
            .clone()
            .or_else(|| config.join_token.clone())
            .filter(|t| !t.is_empty())
            .ok_or(AgentError::Unsupported {
                key: "agent.join_token",
                reason: "NodeAttestor join_token needs a token: set join_token or pass -joinToken"
                    .into(),
            })?;
        if token
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(AgentError::Unsupported {
                key: "agent.join_token",
                reason: "the token holds a quote, backslash or control character".into(),
            });
        }
        format!("join_token = \"{token}\"")
    } else {
        plugin.data_text.clone()
    };
    plugins
        .load_node_attestor_agent(&config.trust_domain, &spec(plugin, &data))
        .map_err(|source| AgentError::Plugin {
            name: plugin.name.clone(),
            source,
        })
}
