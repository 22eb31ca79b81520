//! The server's entry API (SPIRE's `spire.api.server.entry.v1`) over its admin socket, in
//! spire-controller-manager's batch sizes, so the same code drives an embedded or a
//! separate server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use sigil_proto::spire::api::server::entry::v1 as api;
use sigil_proto::spire::api::server::trustdomain::v1 as tdapi;
use sigil_proto::spire::api::types as wire;
use sigil_types::{FederationRelationship, SpiffeId};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::core::Entry;

const CREATE_BATCH: usize = 50;
const UPDATE_BATCH: usize = 50;
const DELETE_BATCH: usize = 200;
const LIST_PAGE: i32 = 200;

/// Why an entry API call failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum EntryApiError {
    /// The socket could not be dialled.
    #[error("connect to the admin socket {socket}: {reason}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        reason: String,
    },
    /// The call failed.
    #[error("{call}: {status}")]
    Call {
        /// Which call.
        call: &'static str,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// The server sent an entry that cannot be read.
    #[error("entry {id:?} from the server: {reason}")]
    BadEntry {
        /// Its ID.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// The outcome of one entry of a batch: `None` when it worked, else the server's reason.
pub type Outcome = Option<String>;

/// A client of the admin socket's entry and trust domain APIs.
#[derive(Debug, Clone)]
pub struct EntryApi {
    client: api::entry_client::EntryClient<Channel>,
    trust_domains: tdapi::trust_domain_client::TrustDomainClient<Channel>,
}

impl EntryApi {
    /// Dial the admin socket at `socket` (lazily: a server not up yet is retried per call).
    pub fn connect(socket: &Path) -> Result<Self, EntryApiError> {
        let path = socket.to_owned();
        let channel =
            Endpoint::from_static("http://localhost")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
        Ok(EntryApi {
            client: api::entry_client::EntryClient::new(channel.clone()),
            trust_domains: tdapi::trust_domain_client::TrustDomainClient::new(channel),
        })
    }

    /// Every entry on the server.
    pub async fn list(&self) -> Result<Vec<Entry>, EntryApiError> {
        let mut client = self.client.clone();
        let mut entries = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_entries(api::ListEntriesRequest {
                    filter: None,
                    output_mask: None,
                    page_size: LIST_PAGE,
                    page_token,
                })
                .await
                .map_err(|status| EntryApiError::Call {
                    call: "ListEntries",
                    status: Box::new(status),
                })?
                .into_inner();
            for entry in page.entries {
                entries.push(from_wire(entry)?);
            }
            if page.next_page_token.is_empty() {
                return Ok(entries);
            }
            page_token = page.next_page_token;
        }
    }

    /// Create `entries`; one outcome per entry, in order.
    pub async fn create(&self, entries: &[Entry]) -> Result<Vec<Outcome>, EntryApiError> {
        batched(entries, CREATE_BATCH, "BatchCreateEntry", |batch| {
            let mut client = self.client.clone();
            let request = api::BatchCreateEntryRequest {
                entries: batch.iter().map(to_wire).collect(),
                output_mask: None,
            };
            async move {
                let results = client
                    .batch_create_entry(request)
                    .await?
                    .into_inner()
                    .results;
                Ok(results.into_iter().map(|r| r.status).collect())
            }
        })
        .await
    }

    /// Update `entries` (every field, no mask, as upstream); one outcome per entry.
    pub async fn update(&self, entries: &[Entry]) -> Result<Vec<Outcome>, EntryApiError> {
        batched(entries, UPDATE_BATCH, "BatchUpdateEntry", |batch| {
            let mut client = self.client.clone();
            let request = api::BatchUpdateEntryRequest {
                entries: batch.iter().map(to_wire).collect(),
                input_mask: None,
                output_mask: None,
            };
            async move {
                let results = client
                    .batch_update_entry(request)
                    .await?
                    .into_inner()
                    .results;
                Ok(results.into_iter().map(|r| r.status).collect())
            }
        })
        .await
    }

    /// Delete the entries `ids`; one outcome per ID.
    pub async fn delete(&self, ids: &[String]) -> Result<Vec<Outcome>, EntryApiError> {
        batched(ids, DELETE_BATCH, "BatchDeleteEntry", |batch| {
            let mut client = self.client.clone();
            let request = api::BatchDeleteEntryRequest {
                ids: batch.to_vec(),
            };
            async move {
                let results = client
                    .batch_delete_entry(request)
                    .await?
                    .into_inner()
                    .results;
                Ok(results.into_iter().map(|r| r.status).collect())
            }
        })
        .await
    }
}

impl EntryApi {
    /// Every federation relationship on the server.
    pub async fn list_relationships(&self) -> Result<Vec<FederationRelationship>, EntryApiError> {
        let mut client = self.trust_domains.clone();
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_federation_relationships(tdapi::ListFederationRelationshipsRequest {
                    output_mask: None,
                    page_size: LIST_PAGE,
                    page_token,
                })
                .await
                .map_err(|status| EntryApiError::Call {
                    call: "ListFederationRelationships",
                    status: Box::new(status),
                })?
                .into_inner();
            for relationship in &page.federation_relationships {
                out.push(FederationRelationship::try_from(relationship).map_err(|e| {
                    EntryApiError::BadEntry {
                        id: relationship.trust_domain.clone(),
                        reason: e.to_string(),
                    }
                })?);
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Create `relationships`; one outcome each.
    pub async fn create_relationships(
        &self,
        relationships: &[FederationRelationship],
    ) -> Result<Vec<Outcome>, EntryApiError> {
        batched(
            relationships,
            CREATE_BATCH,
            "BatchCreateFederationRelationship",
            |batch| {
                let mut client = self.trust_domains.clone();
                let request = tdapi::BatchCreateFederationRelationshipRequest {
                    federation_relationships: batch.iter().map(Into::into).collect(),
                    output_mask: None,
                };
                async move {
                    let response = client.batch_create_federation_relationship(request).await?;
                    let results = response.into_inner().results;
                    Ok(results.into_iter().map(|r| r.status).collect())
                }
            },
        )
        .await
    }

    /// Update `relationships` (every field); one outcome each.
    pub async fn update_relationships(
        &self,
        relationships: &[FederationRelationship],
    ) -> Result<Vec<Outcome>, EntryApiError> {
        batched(
            relationships,
            UPDATE_BATCH,
            "BatchUpdateFederationRelationship",
            |batch| {
                let mut client = self.trust_domains.clone();
                let request = tdapi::BatchUpdateFederationRelationshipRequest {
                    federation_relationships: batch.iter().map(Into::into).collect(),
                    input_mask: None,
                    output_mask: None,
                };
                async move {
                    let response = client.batch_update_federation_relationship(request).await?;
                    let results = response.into_inner().results;
                    Ok(results.into_iter().map(|r| r.status).collect())
                }
            },
        )
        .await
    }

    /// Delete the relationships with `trust_domains`; one outcome each.
    pub async fn delete_relationships(
        &self,
        trust_domains: &[String],
    ) -> Result<Vec<Outcome>, EntryApiError> {
        batched(
            trust_domains,
            DELETE_BATCH,
            "BatchDeleteFederationRelationship",
            |batch| {
                let mut client = self.trust_domains.clone();
                let request = tdapi::BatchDeleteFederationRelationshipRequest {
                    trust_domains: batch.to_vec(),
                };
                async move {
                    let response = client.batch_delete_federation_relationship(request).await?;
                    let results = response.into_inner().results;
                    Ok(results.into_iter().map(|r| r.status).collect())
                }
            },
        )
        .await
    }
}

/// Send `items` through `call` in batches of `size`; one outcome per item, in order. `name`
/// is the RPC, for errors.
async fn batched<T, F, Fut>(
    items: &[T],
    size: usize,
    name: &'static str,
    mut call: F,
) -> Result<Vec<Outcome>, EntryApiError>
where
    F: FnMut(&[T]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Option<wire::Status>>, tonic::Status>>,
{
    let mut outcomes = Vec::with_capacity(items.len());
    for batch in items.chunks(size) {
        let statuses = call(batch).await.map_err(|status| EntryApiError::Call {
            call: name,
            status: Box::new(status),
        })?;
        outcomes.extend(outcomes_of(batch.len(), statuses.into_iter()));
    }
    Ok(outcomes)
}

/// One outcome per request entry; a result the server left out counts as a failure.
fn outcomes_of(
    wanted: usize,
    statuses: impl Iterator<Item = Option<wire::Status>>,
) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = statuses
        .map(|status| match status {
            Some(s) if s.code == 0 => None,
            Some(s) => Some(format!("code {}: {}", s.code, s.message)),
            None => Some("the server sent no status".to_owned()),
        })
        .collect();
    out.resize(wanted, Some("the server sent no result".to_owned()));
    out
}

fn wire_id(id: &str) -> Option<wire::Spiffeid> {
    let parsed: SpiffeId = id.parse().ok()?;
    Some(wire::Spiffeid {
        trust_domain: parsed.trust_domain_name().to_owned(),
        path: parsed.path().to_owned(),
    })
}

/// The wire form of `entry`. Its IDs were checked when it was declared.
pub fn to_wire(entry: &Entry) -> wire::Entry {
    wire::Entry {
        id: entry.id.clone(),
        spiffe_id: wire_id(&entry.spiffe_id),
        parent_id: wire_id(&entry.parent_id),
        selectors: entry
            .selectors
            .iter()
            .map(|(t, v)| wire::Selector {
                r#type: t.clone(),
                value: v.clone(),
            })
            .collect(),
        x509_svid_ttl: entry.x509_svid_ttl,
        federates_with: entry.federates_with.clone(),
        admin: entry.admin,
        downstream: entry.downstream,
        dns_names: entry.dns_names.clone(),
        store_svid: entry.store_svid,
        jwt_svid_ttl: entry.jwt_svid_ttl,
        hint: entry.hint.clone(),
        ..wire::Entry::default()
    }
}

/// An entry from the server.
pub fn from_wire(entry: wire::Entry) -> Result<Entry, EntryApiError> {
    let id_of = |id: Option<&wire::Spiffeid>, what: &str| -> Result<String, EntryApiError> {
        let id = id.ok_or_else(|| EntryApiError::BadEntry {
            id: entry.id.clone(),
            reason: format!("no {what}"),
        })?;
        Ok(format!("spiffe://{}{}", id.trust_domain, id.path))
    };
    Ok(Entry {
        spiffe_id: id_of(entry.spiffe_id.as_ref(), "SPIFFE ID")?,
        parent_id: id_of(entry.parent_id.as_ref(), "parent ID")?,
        selectors: entry
            .selectors
            .iter()
            .map(|s| (s.r#type.clone(), s.value.clone()))
            .collect(),
        x509_svid_ttl: entry.x509_svid_ttl,
        jwt_svid_ttl: entry.jwt_svid_ttl,
        federates_with: entry.federates_with.clone(),
        admin: entry.admin,
        downstream: entry.downstream,
        dns_names: entry.dns_names.clone(),
        hint: entry.hint.clone(),
        store_svid: entry.store_svid,
        id: entry.id,
    })
}
