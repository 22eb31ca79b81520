//! The sync loop: every [`SYNC_INTERVAL`] (and at once at start) the agent renews its own
//! SVID at half-life (`identity`), fetches its authorized entries and the bundles
//! (`entries`), mints the X509-SVIDs that are missing or past half-life in one
//! `BatchNewX509SVID` (`mint`, within `x509_svid_cache_max_size`, see `x509_cache`), drops
//! those of removed entries, and publishes the result as a [`Snapshot`] (`cache`) for the
//! workload socket. Between syncs it mints at once for a workload that subscribes to
//! entries without SVIDs.
//!
//! While the server is unreachable the last snapshot stays published (workloads keep being
//! served from it) and the loop retries with exponential backoff, logging once per failure
//! streak. Every decision that depends on the time reads the injected [`Clock`], and every
//! wait is on tokio's clock, so a paused-clock test drives renewals in milliseconds.

mod entries;
mod identity;
mod mint;

use std::sync::Arc;
use std::time::Duration;

use sigil_config::KeyType;
use sigil_plugins::NodeAttestorAgent;
use sigil_types::Clock;
use sigil_types::x509::validity;
use tokio::sync::watch;

use crate::client::ServerClient;
use crate::error::AgentError;
use crate::storage::{AgentSvid, DataDir};
use crate::x509_cache::X509Demand;

use crate::cache::Snapshot;
pub(crate) use entries::fetch_bundle;

/// Time between two syncs while the server answers.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait between two attempts while the server does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Entries per `BatchNewX509SVID` call.
pub(crate) const BATCH: usize = 500;

/// The sync loop's state.
#[derive(Debug)]
pub(crate) struct Syncer {
    pub(crate) client: ServerClient,
    pub(crate) data: DataDir,
    pub(crate) agent: AgentSvid,
    pub(crate) key_type: KeyType,
    pub(crate) publish: watch::Sender<Arc<Snapshot>>,
    /// The node attestor, kept when the agent is reattestable.
    pub(crate) attestor: Option<NodeAttestorAgent>,
    /// Which X509-SVIDs workloads need, and the limit on the others.
    pub(crate) demand: Arc<X509Demand>,
    /// Where renewal and rotation decisions read the time.
    pub(crate) clock: Arc<dyn Clock>,
}

impl Syncer {
    /// Syncs until `shutdown` resolves. Ends with an error only when the server no longer
    /// accepts the agent and it cannot attest again on its own.
    pub(crate) async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let wait = match self.sync_once().await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(attempts = failures, "sync with the server restored");
                    }
                    failures = 0;
                    SYNC_INTERVAL
                }
                Err(error) if identity::refused(&error).is_some() => {
                    self.recover(&error).await?;
                    failures = 0;
                    Duration::ZERO
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(error = %error, "sync with the server failed; serving the cache and retrying");
                    } else {
                        tracing::debug!(error = %error, attempt = failures + 1, "sync still failing");
                    }
                    failures = failures.saturating_add(1);
                    self.client.reconnect();
                    backoff(failures)
                }
            };
            if self.idle(wait, &mut shutdown).await {
                return Ok(());
            }
        }
    }

    /// One sync round: renewal, entries, bundles, SVIDs; published when all of it worked.
    pub(crate) async fn sync_once(&mut self) -> Result<(), AgentError> {
        self.renew_agent_if_due().await?;
        let current = self.publish.borrow().clone();
        let entries = self.authorized_entries(&current).await?;
        let bundle = self.bundle().await?;
        if current.bundle.as_ref() != Some(&bundle) {
            self.data.store_bundle(&bundle)?;
            self.client
                .set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
            tracing::info!(trust_domain = %bundle.trust_domain, sequence = bundle.sequence_number, "bundle updated");
        }
        let federated = self.federated_bundles(&entries, &current).await;
        let planned = self.svids(&entries, &current).await?;
        let snapshot = Snapshot {
            bundle: Some(bundle),
            federated,
            entries: entries
                .into_iter()
                .map(|e| (e.id.as_str().to_owned(), e))
                .collect(),
            svids: planned.svids,
            synced: true,
            agent_expires_at: self
                .agent
                .chain
                .first()
                .and_then(|leaf| validity(leaf).ok())
                .map_or(0, |(_, not_after)| not_after),
            x509_round: planned.round.unwrap_or(current.x509_round),
        };
        let (entries, svids) = (snapshot.entries.len(), snapshot.svids.len());
        let changed = self.publish.send_if_modified(|old| {
            if **old == snapshot {
                false
            } else {
                *old = Arc::new(snapshot);
                true
            }
        });
        if changed {
            tracing::debug!(entries, svids, "cache updated");
        }
        Ok(())
    }
}

/// The wait after `failures` failed attempts: 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let seconds = 1u64 << failures.saturating_sub(1).min(5);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests;
