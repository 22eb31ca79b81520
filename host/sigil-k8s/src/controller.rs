//! The loop: kube-rs watchers keep reflector stores of the objects the core reads; any
//! change schedules a reconcile (debounced), and one runs every `gcInterval` regardless.
//! A reconcile lists the server's entries, applies the core's plan through the entry API,
//! and writes ClusterSPIFFEID and ClusterStaticEntry statuses back.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::config::ControllerConfig;
use crate::core::{self, Snapshot, Templates};
use crate::crd::{ClusterFederatedTrustDomain, ClusterSPIFFEID, ClusterStaticEntry};
use crate::entryapi::{EntryApi, EntryApiError};
use crate::federation;

/// How long a change waits for more before the reconcile: a rollout changes many pods at
/// once, and one reconcile serves them all.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The entry API.
    #[error(transparent)]
    EntryApi(#[from] EntryApiError),
    /// The rendering task died.
    #[error("rendering entries: {0}")]
    Render(String),
}

/// What one reconcile did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Entries created.
    pub created: usize,
    /// Entries updated.
    pub updated: usize,
    /// Entries deleted.
    pub deleted: usize,
    /// Entry operations the server refused.
    pub failed: usize,
    /// Status subresources written.
    pub statuses_written: usize,
}

/// The stores the watchers fill.
#[derive(Clone)]
struct Stores {
    spiffe_ids: Option<Store<ClusterSPIFFEID>>,
    static_entries: Option<Store<ClusterStaticEntry>>,
    federated: Option<Store<ClusterFederatedTrustDomain>>,
    namespaces: Store<Namespace>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    endpoints: Store<Endpoints>,
}

/// The registration controller.
pub struct Controller {
    config: ControllerConfig,
    client: Client,
    entries: EntryApi,
    templates: Arc<dyn Templates + Send + Sync>,
}

impl Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller for `config`, reading Kubernetes through `client`, writing entries
    /// through `entries`, rendering with `templates`.
    pub fn new(
        config: ControllerConfig,
        client: Client,
        entries: EntryApi,
        templates: Arc<dyn Templates + Send + Sync>,
    ) -> Self {
        Controller {
            config,
            client,
            entries,
            templates,
        }
    }

    /// Watch and reconcile until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ControllerError> {
        let changed = Arc::new(Notify::new());
        let kinds = self.config.reconcile;
        let stores = Stores {
            spiffe_ids: kinds
                .cluster_spiffe_ids
                .then(|| watch::<ClusterSPIFFEID>(&self.client, &changed)),
            static_entries: kinds
                .cluster_static_entries
                .then(|| watch::<ClusterStaticEntry>(&self.client, &changed)),
            federated: kinds
                .cluster_federated_trust_domains
                .then(|| watch::<ClusterFederatedTrustDomain>(&self.client, &changed)),
            namespaces: watch::<Namespace>(&self.client, &changed),
            pods: watch::<Pod>(&self.client, &changed),
            nodes: watch::<Node>(&self.client, &changed),
            endpoints: watch::<Endpoints>(&self.client, &changed),
        };
        tokio::pin!(shutdown);
        // Reconciling before every store has its first list would delete the entries of
        // objects not seen yet.
        tokio::select! {
            () = stores.ready() => {}
            () = &mut shutdown => return Ok(()),
        }
        tracing::info!("caches synced; reconciling");
        loop {
            match self.reconcile_once(&stores).await {
                Ok(outcome) => tracing::debug!(?outcome, "reconciled"),
                Err(e) => tracing::error!(error = %e, "reconcile failed"),
            }
            if let Some(federated) = &stores.federated
                && let Err(e) = self.reconcile_federation(federated).await
            {
                tracing::error!(error = %e, "federation reconcile failed");
            }
            tokio::select! {
                () = changed.notified() => {
                    // Let a burst of changes settle into one reconcile.
                    tokio::time::sleep(DEBOUNCE).await;
                }
                () = tokio::time::sleep(self.config.gc_interval) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    async fn reconcile_once(&self, stores: &Stores) -> Result<Outcome, ControllerError> {
        let snapshot = stores.snapshot();
        // Rendering runs WASM calls, synchronous and CPU-bound: off the async workers.
        let (config, templates, view) = (
            self.config.clone(),
            self.templates.clone(),
            snapshot.clone(),
        );
        let mut declaration =
            tokio::task::spawn_blocking(move || core::declare(&config, &view, &*templates))
                .await
                .map_err(|e| ControllerError::Render(e.to_string()))?;
        for problem in &declaration.problems {
            tracing::warn!("{problem}");
        }
        let current = self.entries.list().await?;
        let plan = core::plan(&self.config, current, &mut declaration, || {
            uuid::Uuid::new_v4().to_string()
        });
        let mut outcome = Outcome::default();
        if !plan.delete.is_empty() {
            let ids: Vec<String> = plan.delete.iter().map(|e| e.id.clone()).collect();
            for (entry, result) in plan.delete.iter().zip(self.entries.delete(&ids).await?) {
                match result {
                    None => {
                        outcome.deleted += 1;
                        tracing::info!(id = %entry.id, spiffe_id = %entry.spiffe_id, "deleted entry");
                    }
                    Some(e) => {
                        outcome.failed += 1;
                        tracing::error!(id = %entry.id, error = %e, "failed to delete entry");
                    }
                }
            }
        }
        if !plan.create.is_empty() {
            let entries: Vec<core::Entry> = plan.create.iter().map(|(e, _)| e.clone()).collect();
            let results = self.entries.create(&entries).await?;
            for ((entry, owner), result) in plan.create.iter().zip(results) {
                match result {
                    None => {
                        outcome.created += 1;
                        core::record_created(&mut declaration, owner);
                        tracing::info!(spiffe_id = %entry.spiffe_id, parent_id = %entry.parent_id, "created entry");
                    }
                    Some(e) => {
                        outcome.failed += 1;
                        core::record_failure(&mut declaration, owner);
                        tracing::error!(spiffe_id = %entry.spiffe_id, error = %e, "failed to create entry");
                    }
                }
            }
        }
        if !plan.update.is_empty() {
            let entries: Vec<core::Entry> = plan.update.iter().map(|(e, _)| e.clone()).collect();
            let results = self.entries.update(&entries).await?;
            for ((entry, owner), result) in plan.update.iter().zip(results) {
                match result {
                    None => {
                        outcome.updated += 1;
                        tracing::info!(id = %entry.id, "updated entry");
                    }
                    Some(e) => {
                        outcome.failed += 1;
                        core::record_failure(&mut declaration, owner);
                        tracing::error!(id = %entry.id, error = %e, "failed to update entry");
                    }
                }
            }
        }
        outcome.statuses_written = self.write_statuses(&snapshot, &declaration).await;
        Ok(outcome)
    }

    /// Federation relationships from ClusterFederatedTrustDomains; how many changes the
    /// server refused.
    async fn reconcile_federation(
        &self,
        store: &Store<ClusterFederatedTrustDomain>,
    ) -> Result<usize, ControllerError> {
        let objects = store.state();
        let refs: Vec<&ClusterFederatedTrustDomain> = objects.iter().map(|o| &**o).collect();
        let declared = federation::declare(&self.config, &refs);
        for problem in &declared.problems {
            tracing::warn!("{problem}");
        }
        let current = self.entries.list_relationships().await?;
        let plan = federation::plan(current, declared);
        let mut failed = 0;
        if !plan.delete.is_empty() {
            let results = self.entries.delete_relationships(&plan.delete).await?;
            for (td, result) in plan.delete.iter().zip(results) {
                match result {
                    None => tracing::info!(trust_domain = %td, "deleted federation relationship"),
                    Some(e) => {
                        failed += 1;
                        tracing::error!(trust_domain = %td, error = %e, "failed to delete federation relationship");
                    }
                }
            }
        }
        for (call, relationships) in [("create", &plan.create), ("update", &plan.update)] {
            if relationships.is_empty() {
                continue;
            }
            let results = if call == "create" {
                self.entries.create_relationships(relationships).await?
            } else {
                self.entries.update_relationships(relationships).await?
            };
            for (relationship, result) in relationships.iter().zip(results) {
                let td = relationship.trust_domain.name();
                match result {
                    None => tracing::info!(trust_domain = td, "{call}d federation relationship"),
                    Some(e) => {
                        failed += 1;
                        tracing::error!(trust_domain = td, error = %e, "failed to {call} federation relationship");
                    }
                }
            }
        }
        Ok(failed)
    }

    /// Write the statuses that changed; a failed write is logged and retried by the next
    /// reconcile (the status still differs then).
    async fn write_statuses(&self, snapshot: &Snapshot, declaration: &core::Declaration) -> usize {
        let spiffe_ids = snapshot.cluster_spiffe_ids.iter().map(|o| {
            (
                o.metadata.name.clone().unwrap_or_default(),
                o.status.as_ref(),
            )
        });
        let statics = snapshot.cluster_static_entries.iter().map(|o| {
            (
                o.metadata.name.clone().unwrap_or_default(),
                o.status.as_ref(),
            )
        });
        patch_changed_statuses::<ClusterSPIFFEID, _>(
            &self.client,
            spiffe_ids,
            &declaration.spiffe_id_status,
        )
        .await
            + patch_changed_statuses::<ClusterStaticEntry, _>(
                &self.client,
                statics,
                &declaration.static_status,
            )
            .await
    }
}

/// Merge-patch the status of each `(name, current status)` object of kind `K` whose wanted
/// status differs; the number written. A failed write is logged.
async fn patch_changed_statuses<'a, K, S>(
    client: &Client,
    objects: impl Iterator<Item = (String, Option<&'a S>)>,
    wanted: &std::collections::BTreeMap<String, S>,
) -> usize
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: PartialEq + serde::Serialize + 'a,
{
    let api: Api<K> = Api::all(client.clone());
    let mut written = 0;
    for (name, current) in objects {
        let Some(next) = wanted.get(&name) else {
            continue;
        };
        if current == Some(next) {
            continue;
        }
        let patch = Patch::Merge(serde_json::json!({ "status": next }));
        match api
            .patch_status(&name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => written += 1,
            Err(e) => tracing::error!(
                name,
                kind = %K::kind(&()),
                error = %e,
                "failed to update the status"
            ),
        }
    }
    written
}

impl Stores {
    async fn ready(&self) {
        if let Some(s) = &self.spiffe_ids {
            let _ = s.wait_until_ready().await;
        }
        if let Some(s) = &self.static_entries {
            let _ = s.wait_until_ready().await;
        }
        if let Some(s) = &self.federated {
            let _ = s.wait_until_ready().await;
        }
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.endpoints.wait_until_ready().await;
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cluster_spiffe_ids: self
                .spiffe_ids
                .as_ref()
                .map(Store::state)
                .unwrap_or_default(),
            cluster_static_entries: self
                .static_entries
                .as_ref()
                .map(Store::state)
                .unwrap_or_default(),
            namespaces: self.namespaces.state(),
            pods: self.pods.state(),
            nodes: self.nodes.state(),
            endpoints: self.endpoints.state(),
        }
    }
}

/// A reflector of every `K` in the cluster, driven by a task that wakes `changed` on every
/// event; the watcher reconnects with kube-rs's default backoff.
fn watch<K>(client: &Client, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let changed = changed.clone();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}
