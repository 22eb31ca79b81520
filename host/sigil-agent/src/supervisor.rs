//! The supervisor: once the identity is established (`startup`), it spawns the agent's tasks
//! (the sync loop, the health listener, the admin socket, the workload socket), owns the
//! stop signal, and ends them in order.
//!
//! Whatever ends first stops the rest: the caller's shutdown, an eviction (the sync loop
//! ends in an error), a health listener that cannot bind, or the workload socket ending.
//! The workload socket and the health listener are awaited, then the admin socket; the
//! sync loop gets a short wait to report why it stopped, without hanging on a call in
//! flight.

use std::sync::Arc;
use std::time::Duration;

use sigil_config::AgentConfig;
use sigil_plugins::WorkloadAttestor;
use sigil_types::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::Snapshot;
use crate::error::AgentError;
use crate::startup::Established;
use crate::storage::DataDir;
use crate::sync::Syncer;
use crate::x509_cache::X509Demand;
use crate::{Workloads, admin};

/// How long the supervisor waits for the sync loop to end once the agent stops.
const SYNC_STOP_WAIT: Duration = Duration::from_secs(2);

/// Runs the agent's tasks with `identity` until `shutdown` resolves or one of them stops
/// the agent.
pub(crate) async fn supervise(
    config: &AgentConfig,
    identity: Established,
    data: DataDir,
    attestors: Vec<WorkloadAttestor>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let Established {
        client,
        agent,
        attestor,
        stored_bundle,
    } = identity;
    let (publish, cache) = watch::channel(Arc::new(Snapshot {
        bundle: stored_bundle,
        ..Snapshot::default()
    }));
    let stop = Stop::new(shutdown);
    let demand = X509Demand::new(config.x509_svid_cache_max_size);
    let syncer = Syncer {
        client: client.clone(),
        data,
        agent,
        key_type: config.workload_x509_svid_key_type,
        publish,
        attestor,
        demand: demand.clone(),
        clock: clock.clone(),
    };
    // A sync that ends in an error (the server evicted the agent) stops the whole agent.
    let sync_task = tokio::spawn({
        let (stop, stopped) = (stop.sender(), stop.wait());
        async move {
            let synced = syncer.run(stopped).await;
            if synced.is_err() {
                stop.send_replace(true);
            }
            synced
        }
    });
    let health_checks = config.health_checks.clone();
    let health_cache = cache.clone();
    let health_clock = clock.clone();
    let ready = move || {
        let readiness = health_cache.borrow().readiness(health_clock.now());
        async move { readiness }
    };
    // A health listener that cannot bind stops the agent: the operator asked for it.
    let health = {
        let (stop, stopped) = (stop.sender(), stop.wait());
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
        clock,
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
    let admin_task = admin.map(|admin| tokio::spawn(admin.serve(stop.wait())));
    let workload_config = workload_config(config);
    tracing::info!(socket = %config.socket_path.display(), "serving workloads");
    // Whatever ends the workload socket (shutdown, eviction, a failure) stops the rest.
    let workload_socket = {
        let (stop, stopped) = (stop.sender(), stop.wait());
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
    sync_result(sync_task).await?;
    served?;
    health?;
    admin
}

/// The sync loop's result once the agent stops: its error when it was the one that stopped
/// the agent (evicted); `Ok` when it does not end within [`SYNC_STOP_WAIT`] (it is aborted).
async fn sync_result(mut task: JoinHandle<Result<(), AgentError>>) -> Result<(), AgentError> {
    match tokio::time::timeout(SYNC_STOP_WAIT, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            task.abort();
            Ok(())
        }
    }
}

/// The workload socket's settings from the agent's config.
fn workload_config(config: &AgentConfig) -> sigil_workload::WorkloadConfig {
    let mut workload = sigil_workload::WorkloadConfig::default();
    workload.default_svid_name = config.sds.default_svid_name.clone();
    workload.default_bundle_name = config.sds.default_bundle_name.clone();
    workload.default_all_bundles_name = config.sds.default_all_bundles_name.clone();
    workload.disable_spiffe_cert_validation = config.sds.disable_spiffe_cert_validation;
    workload.allow_unauthenticated_verifiers = config.allow_unauthenticated_verifiers;
    workload.limits = sigil_listen::Limits {
        max_connections: config.workload_api_limits.max_connections,
        max_connections_per_uid: config.workload_api_limits.max_connections_per_uid,
        idle_timeout: Some(config.workload_api_limits.idle_timeout),
    };
    workload
}

/// The stop signal every task watches: set by the caller's shutdown or by a task that
/// ends the agent.
struct Stop {
    sender: watch::Sender<bool>,
}

impl Stop {
    /// A stop signal that `shutdown` sets when it resolves.
    fn new(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (sender, _) = watch::channel(false);
        tokio::spawn({
            let sender = sender.clone();
            async move {
                shutdown.await;
                sender.send_replace(true);
            }
        });
        Stop { sender }
    }

    /// A handle that sets the signal.
    fn sender(&self) -> watch::Sender<bool> {
        self.sender.clone()
    }

    /// A future that resolves once the signal is set.
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.sender.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }
}
