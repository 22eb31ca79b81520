//! The sync loop: every [`SYNC_INTERVAL`] (and at once at start) the agent fetches its
//! authorized entries and the bundles, mints the X509-SVIDs that are missing or past
//! half-life in one `BatchNewX509SVID` (within `x509_svid_cache_max_size`, see
//! `x509_cache`), drops those of removed entries, renews its own SVID at half-life, and
//! publishes the result as a [`Snapshot`] for the workload socket. Between syncs it mints
//! at once for a workload that subscribes to entries without SVIDs.
//!
//! While the server is unreachable the last snapshot stays published (workloads keep being
//! served from it) and the loop retries with exponential backoff, logging once per failure
//! streak.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sigil_config::KeyType;
use sigil_plugins::NodeAttestorAgent;
use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, RegistrationEntry, TrustDomain, X509Svid};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::attest;
use crate::client::ServerClient;
use crate::error::AgentError;
use crate::keys;
use crate::storage::{AgentSvid, DataDir};
use crate::x509_cache::X509Demand;
use sigil_types::x509::validity;

/// Time between two syncs while the server answers.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait between two attempts while the server does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Entries per `BatchNewX509SVID` call.
pub(crate) const BATCH: usize = 500;

/// One X509-SVID the agent holds for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedSvid {
    pub(crate) svid: X509Svid,
    /// When to mint a new one: half-life plus a jitter of up to a tenth of the lifetime.
    pub(crate) renew_at: i64,
    /// The entry's revision the SVID was minted for; a changed entry gets a new SVID.
    pub(crate) revision: i64,
}

/// What the agent can serve at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The own trust domain's bundle; `None` until the first successful sync (or a stored one).
    pub(crate) bundle: Option<Bundle>,
    /// Bundles of trust domains the entries federate with.
    pub(crate) federated: BTreeMap<TrustDomain, Bundle>,
    /// Authorized entries by entry ID.
    pub(crate) entries: BTreeMap<String, Arc<RegistrationEntry>>,
    /// SVIDs by entry ID.
    pub(crate) svids: HashMap<String, Arc<CachedSvid>>,
    /// A sync with the server has completed since the agent started.
    pub(crate) synced: bool,
    /// When the agent's own SVID expires (Unix seconds); 0 before the first sync.
    pub(crate) agent_expires_at: i64,
    /// The last X509-SVID planning round that minted for a subscription (see `x509_cache`).
    pub(crate) x509_round: u64,
}

impl Snapshot {
    /// Ready (the `health_checks` ready path): synced at least once since the start, with
    /// an agent SVID still valid. A server outage alone does not make the agent unready: it
    /// keeps serving what it holds.
    pub(crate) fn readiness(&self, now: i64) -> Result<(), String> {
        if !self.synced {
            return Err("the agent has not synced with the server yet".into());
        }
        if self.agent_expires_at <= now {
            return Err("the agent SVID has expired".into());
        }
        Ok(())
    }
}

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
                Err(error) if refused(&error).is_some() => {
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

    /// The server refused the agent itself (evicted or banned). A reattestable agent that is
    /// not banned attests again; otherwise, as SPIRE's agent does, the stored SVID is removed
    /// and the agent stops, so that its next start attests anew.
    async fn recover(&mut self, error: &AgentError) -> Result<(), AgentError> {
        let reason = refused(error).unwrap_or_default().to_owned();
        // SPIRE's typed reason decides, not the message text.
        let banned = matches!(error, AgentError::Server { status, .. } if sigil_proto::denied::is_banned(status));
        if let Some(attestor) = self.attestor.as_ref().filter(|_| !banned) {
            tracing::warn!(spiffe_id = %self.agent.spiffe_id, %reason, "the server no longer accepts the agent; attesting again");
            match attest::attest(&self.client, attestor).await {
                Ok(svid) => {
                    self.adopt(svid)?;
                    tracing::info!(spiffe_id = %self.agent.spiffe_id, "node attested again");
                    return Ok(());
                }
                // Refused attestation ends the agent like an eviction; anything else is
                // retried by the loop.
                Err(failed) if refused(&failed).is_none() => return Ok(()),
                Err(failed) => tracing::error!(error = %failed, "attesting again was refused"),
            }
        }
        tracing::error!(spiffe_id = %self.agent.spiffe_id, %reason, "the server no longer accepts the agent; removing its SVID and stopping");
        self.data.remove_agent_svid()?;
        Err(AgentError::Evicted {
            spiffe_id: self.agent.spiffe_id.to_string(),
            reason,
        })
    }

    /// Takes `svid` as the agent's identity: stored, and used from the next connection on.
    fn adopt(&mut self, svid: AgentSvid) -> Result<(), AgentError> {
        self.data.store_agent_svid(&svid)?;
        self.client.set_identity(&svid.chain, &svid.key)?;
        self.client.reconnect();
        self.agent = svid;
        Ok(())
    }

    /// One sync round.
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

    /// A new agent SVID when the current one is past half-life: by attesting again when the
    /// agent is reattestable (as SPIRE's agent does), else by `RenewAgent`.
    async fn renew_agent_if_due(&mut self) -> Result<(), AgentError> {
        let leaf = self
            .agent
            .chain
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (not_before, not_after) =
            validity(leaf).map_err(|e| AgentError::bad("RenewAgent", e))?;
        if now() < not_before + (not_after - not_before) / 2 {
            return Ok(());
        }
        let renewed = match &self.attestor {
            Some(attestor) => attest::attest(&self.client, attestor).await?,
            None => attest::renew(&self.client).await?,
        };
        self.adopt(renewed)?;
        tracing::info!(spiffe_id = %self.agent.spiffe_id, reattested = self.attestor.is_some(), "agent SVID renewed");
        Ok(())
    }

    /// The authorized entries through `SyncAuthorizedEntries`: the server sends a small set
    /// whole; for a large one it sends revisions first and the agent asks only for the
    /// entries it lacks or holds at an older revision. A server without the call gets
    /// `GetAuthorizedEntries`.
    async fn authorized_entries(
        &self,
        current: &Snapshot,
    ) -> Result<Vec<Arc<RegistrationEntry>>, AgentError> {
        const CALL: &str = "SyncAuthorizedEntries";
        let (send, receive) = mpsc::channel(2);
        send.send(entry_api::SyncAuthorizedEntriesRequest::default())
            .await
            .map_err(|_| AgentError::bad(CALL, "request stream closed"))?;
        let answer = entry_api::entry_client::EntryClient::new(self.client.channel())
            .sync_authorized_entries(ReceiverStream::new(receive))
            .await;
        let mut responses = match answer {
            Ok(responses) => responses.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return self.all_authorized_entries().await;
            }
            Err(status) => return Err(AgentError::server(CALL, status)),
        };
        let (mut wire, revisions) = phase(&mut responses).await?;
        if revisions.is_empty() {
            return Ok(decode(&wire));
        }
        // Large set: keep what is current, ask for the rest.
        let mut entries = Vec::with_capacity(revisions.len());
        let mut wanted = Vec::new();
        for revision in &revisions {
            match current.entries.get(&revision.id) {
                Some(entry) if entry.revision_number == revision.revision_number => {
                    entries.push(entry.clone());
                }
                _ => wanted.push(revision.id.clone()),
            }
        }
        for ids in wanted.chunks(BATCH) {
            send.send(entry_api::SyncAuthorizedEntriesRequest {
                output_mask: None,
                ids: ids.to_vec(),
            })
            .await
            .map_err(|_| AgentError::bad(CALL, "request stream closed"))?;
            let (page, _) = phase(&mut responses).await?;
            wire.extend(page);
        }
        drop(send);
        tracing::debug!(
            revisions = revisions.len(),
            fetched = wanted.len(),
            "authorized entries synced by revision"
        );
        entries.extend(decode(&wire));
        entries.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(entries)
    }

    /// Every authorized entry in one `GetAuthorizedEntries`.
    async fn all_authorized_entries(&self) -> Result<Vec<Arc<RegistrationEntry>>, AgentError> {
        const CALL: &str = "GetAuthorizedEntries";
        let response = entry_api::entry_client::EntryClient::new(self.client.channel())
            .get_authorized_entries(entry_api::GetAuthorizedEntriesRequest { output_mask: None })
            .await
            .map_err(|s| AgentError::server(CALL, s))?
            .into_inner();
        Ok(decode(&response.entries))
    }

    async fn bundle(&self) -> Result<Bundle, AgentError> {
        fetch_bundle(&self.client, &self.agent.spiffe_id.trust_domain()).await
    }

    /// Bundles of every trust domain an entry federates with; a failure keeps the old one.
    async fn federated_bundles(
        &self,
        entries: &[Arc<RegistrationEntry>],
        current: &Snapshot,
    ) -> BTreeMap<TrustDomain, Bundle> {
        const CALL: &str = "GetFederatedBundle";
        let wanted: BTreeSet<&TrustDomain> = entries
            .iter()
            .flat_map(|e| e.federates_with.iter())
            .collect();
        let mut bundles = BTreeMap::new();
        let mut client = bundle_api::bundle_client::BundleClient::new(self.client.channel());
        for trust_domain in wanted {
            let answer = client
                .get_federated_bundle(bundle_api::GetFederatedBundleRequest {
                    trust_domain: trust_domain.name().to_owned(),
                    output_mask: None,
                })
                .await
                .map_err(|s| AgentError::server(CALL, s))
                .and_then(|r| {
                    Bundle::try_from(&r.into_inner()).map_err(|e| AgentError::bad(CALL, e))
                });
            match answer {
                Ok(bundle) if bundle.trust_domain == *trust_domain => {
                    bundles.insert(trust_domain.clone(), bundle);
                }
                Ok(_) => {
                    tracing::warn!(%trust_domain, "federated bundle of another trust domain ignored");
                }
                Err(error) => {
                    tracing::debug!(%trust_domain, error = %error, "no federated bundle");
                    if let Some(old) = current.federated.get(trust_domain) {
                        bundles.insert(trust_domain.clone(), old.clone());
                    }
                }
            }
        }
        bundles
    }

    /// One `BatchNewX509SVID` for `entries`: an SVID per entry, `None` where refused.
    pub(crate) async fn mint<'a>(
        &self,
        entries: impl Iterator<Item = &'a RegistrationEntry>,
    ) -> Result<Vec<Option<CachedSvid>>, AgentError> {
        const CALL: &str = "BatchNewX509SVID";
        let entries: Vec<&RegistrationEntry> = entries.collect();
        let key_type = self.key_type;
        let count = entries.len();
        let pairs = tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|_| {
                    let key = keys::generate(key_type)?;
                    let csr = keys::csr(&key)?;
                    Ok((keys::private_der(&key), csr))
                })
                .collect::<Result<Vec<_>, AgentError>>()
        })
        .await
        .map_err(|e| AgentError::Key(e.to_string()))??;
        let params = entries
            .iter()
            .zip(&pairs)
            .map(|(entry, (_, csr))| svid_api::NewX509svidParams {
                entry_id: entry.id.as_str().to_owned(),
                csr: csr.clone(),
            })
            .collect();
        let response = svid_api::svid_client::SvidClient::new(self.client.channel())
            .batch_new_x509svid(svid_api::BatchNewX509svidRequest { params })
            .await
            .map_err(|s| AgentError::server(CALL, s))?
            .into_inner();
        if response.results.len() != entries.len() {
            return Err(AgentError::bad(CALL, "one result per entry expected"));
        }
        let mut out = Vec::with_capacity(entries.len());
        for ((entry, (key, _)), result) in entries.iter().zip(pairs).zip(response.results) {
            let status = result.status.unwrap_or_default();
            let svid = match (status.code, result.svid) {
                (0, Some(svid)) => cached(entry, svid, key),
                (_, _) => Err(format!("code {}: {}", status.code, status.message)),
            };
            match svid {
                Ok(svid) => {
                    tracing::debug!(entry_id = %entry.id.as_str(), spiffe_id = %entry.spiffe_id, "X509-SVID minted");
                    out.push(Some(svid));
                }
                Err(reason) => {
                    tracing::warn!(entry_id = %entry.id.as_str(), spiffe_id = %entry.spiffe_id, %reason, "the server refused an X509-SVID");
                    out.push(None);
                }
            }
        }
        Ok(out)
    }
}

/// The trust domain's bundle from `GetBundle`.
pub(crate) async fn fetch_bundle(
    client: &ServerClient,
    trust_domain: &TrustDomain,
) -> Result<Bundle, AgentError> {
    const CALL: &str = "GetBundle";
    let wire = bundle_api::bundle_client::BundleClient::new(client.channel())
        .get_bundle(bundle_api::GetBundleRequest { output_mask: None })
        .await
        .map_err(|s| AgentError::server(CALL, s))?
        .into_inner();
    let bundle = Bundle::try_from(&wire).map_err(|e| AgentError::bad(CALL, e))?;
    if bundle.trust_domain != *trust_domain {
        return Err(AgentError::bad(CALL, "bundle of another trust domain"));
    }
    if bundle.x509_authorities.is_empty() {
        return Err(AgentError::bad(CALL, "bundle without X.509 authorities"));
    }
    Ok(bundle)
}

/// The responses of one phase of `SyncAuthorizedEntries`, up to the one without `more`:
/// the entries and the revisions they carried.
async fn phase(
    responses: &mut tonic::Streaming<entry_api::SyncAuthorizedEntriesResponse>,
) -> Result<(Vec<wire::Entry>, Vec<entry_api::EntryRevision>), AgentError> {
    const CALL: &str = "SyncAuthorizedEntries";
    let (mut entries, mut revisions) = (Vec::new(), Vec::new());
    loop {
        let response = responses
            .message()
            .await
            .map_err(|s| AgentError::server(CALL, s))?
            .ok_or_else(|| AgentError::bad(CALL, "the stream ended in the middle of a phase"))?;
        entries.extend(response.entries);
        revisions.extend(response.entry_revisions);
        if !response.more {
            return Ok((entries, revisions));
        }
    }
}

/// The entries the agent can read; the others are logged and skipped.
fn decode(wire: &[wire::Entry]) -> Vec<Arc<RegistrationEntry>> {
    wire.iter()
        .filter_map(|entry| match RegistrationEntry::try_from(entry) {
            Ok(decoded) => Some(Arc::new(decoded)),
            Err(error) => {
                tracing::warn!(entry_id = %entry.id, error = %error, "skipping an entry the agent cannot read");
                None
            }
        })
        .collect()
}

/// The SVID from the wire with the key made for it.
fn cached(
    entry: &RegistrationEntry,
    svid: sigil_proto::spire::api::types::X509svid,
    key: sigil_types::PrivateKeyDer,
) -> Result<CachedSvid, String> {
    let leaf = svid.cert_chain.first().ok_or("empty certificate chain")?;
    let (not_before, not_after) = validity(leaf)?;
    let ids = sigil_types::x509::uri_sans(leaf)?;
    if ids.len() != 1 || ids[0] != entry.spiffe_id.as_str() {
        return Err(format!("SVID names {ids:?}, entry has {}", entry.spiffe_id));
    }
    let lifetime = (not_after - not_before).max(0);
    Ok(CachedSvid {
        svid: X509Svid {
            spiffe_id: entry.spiffe_id.clone(),
            cert_chain: svid.cert_chain,
            private_key: key,
            expires_at: not_after,
            hint: entry.hint.clone(),
        },
        renew_at: not_before + lifetime / 2 + jitter(lifetime / 10),
        revision: entry.revision_number,
    })
}

/// A random number of seconds in `0..max` (0 when `max` ≤ 0).
fn jitter(max: i64) -> i64 {
    let mut bytes = [0u8; 8];
    if max <= 0 || aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0;
    }
    i64::try_from(u64::from_le_bytes(bytes) % max.unsigned_abs()).unwrap_or(0)
}

/// The server's message when it refused the agent itself: a call the agent makes with its
/// SVID answered PermissionDenied (the server does not know the agent any more, or it is
/// banned). Refusals of single SVIDs come inside `BatchNewX509SVID`'s results, not here.
fn refused(error: &AgentError) -> Option<&str> {
    match error {
        AgentError::Server { call, status }
            if status.code() == tonic::Code::PermissionDenied && *call != "GetBundle" =>
        {
            Some(status.message())
        }
        _ => None,
    }
}

/// The wait after `failures` failed attempts: 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let seconds = 1u64 << failures.saturating_sub(1).min(5);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(jitter(0), 0);
        for _ in 0..100 {
            assert!((0..7).contains(&jitter(7)));
        }
    }
}
