//! What the sync loop fetches besides SVIDs: the authorized entries (`SyncAuthorizedEntries`,
//! by revision for a large set, else `GetAuthorizedEntries`), the trust domain's bundle and
//! the bundles of the trust domains the entries federate with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, RegistrationEntry, TrustDomain};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{BATCH, Syncer};
use crate::cache::Snapshot;
use crate::client::ServerClient;
use crate::error::AgentError;

impl Syncer {
    /// The authorized entries through `SyncAuthorizedEntries`: the server sends a small set
    /// whole; for a large one it sends revisions first and the agent asks only for the
    /// entries it lacks or holds at an older revision. A server without the call gets
    /// `GetAuthorizedEntries`.
    pub(super) async fn authorized_entries(
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

    pub(super) async fn bundle(&self) -> Result<Bundle, AgentError> {
        fetch_bundle(&self.client, &self.agent.spiffe_id.trust_domain()).await
    }

    /// Bundles of every trust domain an entry federates with; a failure keeps the old one.
    pub(super) async fn federated_bundles(
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
