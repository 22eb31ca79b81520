//! `spire.api.server.entry.v1.Entry` on the admin socket.

use std::str::FromStr;
use std::sync::Arc;

use sigil_proto::convert::additional_attributes_unsupported;
use sigil_proto::spire::api::server::entry::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::{EntryFilter, EntryMask, FederatesWithMatch, MatchMode, SelectorMatch};
use sigil_types::{EntryId, RegistrationEntry, Selector, TrustDomain};
use tonic::{Request, Response, Status};

use super::entry_rules::{check_ids, merged};
use super::spiffe_id;
use crate::api_error::{ApiError, item_status, ok_status};
use crate::setup::Server;

/// The entry service.
pub(crate) struct EntryApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::entry_server::Entry for EntryApi {
    async fn count_entries(
        &self,
        request: Request<api::CountEntriesRequest>,
    ) -> Result<Response<api::CountEntriesResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let downstream = filter.by_downstream;
        let filter = entry_filter(
            filter.by_spiffe_id.as_ref(),
            filter.by_parent_id.as_ref(),
            filter.by_selectors.as_ref(),
            filter.by_federates_with.as_ref(),
            filter.by_hint,
        )?;
        let count = match downstream {
            None => self.0.store.count_entries(&filter).await,
            Some(downstream) => self.0.store.list_entries(&filter, None).await.map(|page| {
                page.items
                    .iter()
                    .filter(|e| e.downstream == downstream)
                    .count() as u64
            }),
        }
        .map_err(ApiError::from)?;
        Ok(Response::new(api::CountEntriesResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn list_entries(
        &self,
        request: Request<api::ListEntriesRequest>,
    ) -> Result<Response<api::ListEntriesResponse>, Status> {
        let request = request.into_inner();
        let filter = request.filter.unwrap_or_default();
        let downstream = filter.by_downstream;
        let store_filter = entry_filter(
            filter.by_spiffe_id.as_ref(),
            filter.by_parent_id.as_ref(),
            filter.by_selectors.as_ref(),
            filter.by_federates_with.as_ref(),
            filter.by_hint,
        )?;
        let page = super::page_request(request.page_size, request.page_token)?;
        let page = self
            .0
            .store
            .list_entries(&store_filter, Some(&page))
            .await
            .map_err(ApiError::from)?;
        let entries = page
            .items
            .iter()
            .filter(|e| downstream.is_none_or(|d| e.downstream == d))
            .map(|e| masked(e, request.output_mask.as_ref()))
            .collect();
        Ok(Response::new(api::ListEntriesResponse {
            entries,
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_entry(
        &self,
        request: Request<api::GetEntryRequest>,
    ) -> Result<Response<wire::Entry>, Status> {
        let request = request.into_inner();
        let id = entry_id(&request.id)?;
        match self.0.store.fetch_entry(&id).await {
            Ok(Some(entry)) => Ok(Response::new(masked(&entry, request.output_mask.as_ref()))),
            Ok(None) => {
                Err(ApiError::not_found(format!("entry {:?} not found", request.id)).into())
            }
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    async fn batch_create_entry(
        &self,
        request: Request<api::BatchCreateEntryRequest>,
    ) -> Result<Response<api::BatchCreateEntryResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.entries.len());
        for wire_entry in &request.entries {
            let result = match self.create(wire_entry).await {
                Ok(entry) => api::batch_create_entry_response::Result {
                    status: Some(ok_status()),
                    entry: Some(masked(&entry, request.output_mask.as_ref())),
                },
                Err((status, existing)) => api::batch_create_entry_response::Result {
                    status: Some(item_status(status)),
                    entry: existing.map(|e| masked(&e, request.output_mask.as_ref())),
                },
            };
            results.push(result);
        }
        Ok(Response::new(api::BatchCreateEntryResponse { results }))
    }

    async fn batch_update_entry(
        &self,
        request: Request<api::BatchUpdateEntryRequest>,
    ) -> Result<Response<api::BatchUpdateEntryResponse>, Status> {
        let request = request.into_inner();
        let mask = request
            .input_mask
            .as_ref()
            .map_or(EntryMask::ALL, input_mask);
        let mut results = Vec::with_capacity(request.entries.len());
        for wire_entry in &request.entries {
            let updated = self.update(wire_entry, &mask).await;
            results.push(match updated {
                Ok(entry) => api::batch_update_entry_response::Result {
                    status: Some(ok_status()),
                    entry: Some(masked(&entry, request.output_mask.as_ref())),
                },
                Err(status) => api::batch_update_entry_response::Result {
                    status: Some(item_status(status)),
                    entry: None,
                },
            });
        }
        Ok(Response::new(api::BatchUpdateEntryResponse { results }))
    }

    async fn batch_delete_entry(
        &self,
        request: Request<api::BatchDeleteEntryRequest>,
    ) -> Result<Response<api::BatchDeleteEntryResponse>, Status> {
        let mut results = Vec::new();
        for id in request.into_inner().ids {
            let deleted = match entry_id(&id) {
                Ok(entry) => self
                    .0
                    .store
                    .delete_entry(&entry)
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(api::batch_delete_entry_response::Result {
                status: Some(match deleted {
                    Ok(()) => ok_status(),
                    Err(status) => item_status(status),
                }),
                id,
            });
        }
        Ok(Response::new(api::BatchDeleteEntryResponse { results }))
    }

    async fn get_authorized_entries(
        &self,
        _request: Request<api::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<api::GetAuthorizedEntriesResponse>, Status> {
        Err(ApiError::permission_denied(
            "GetAuthorizedEntries is for agents, over the agent API with an agent SVID",
        )
        .into())
    }

    type SyncAuthorizedEntriesStream =
        tokio_stream::Empty<Result<api::SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        _request: Request<tonic::Streaming<api::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        Err(ApiError::permission_denied(
            "SyncAuthorizedEntries is for agents, over the agent API with an agent SVID",
        )
        .into())
    }
}

impl EntryApi {
    /// Create one entry; on failure the status and, for AlreadyExists, the stored entry.
    async fn create(
        &self,
        wire_entry: &wire::Entry,
    ) -> Result<RegistrationEntry, (ApiError, Option<RegistrationEntry>)> {
        let entry = additional_attributes_unsupported(wire_entry)
            .and_then(|()| RegistrationEntry::try_from(wire_entry))
            .map_err(|e| (ApiError::invalid_argument(e.to_string()), None))?;
        check_ids(&self.0.trust_domain, &entry, &EntryMask::ALL).map_err(|s| (s, None))?;
        for trust_domain in &entry.federates_with {
            self.check_federated(trust_domain)
                .await
                .map_err(|s| (s, None))?;
        }
        match self.0.store.create_entry(entry).await {
            Ok(entry) => Ok(entry),
            Err(sigil_store::Error::AlreadyExists {
                existing_entry: Some(existing),
                ..
            }) => Err((
                ApiError::AlreadyExists("similar entry already exists".into()),
                Some(*existing),
            )),
            Err(error) => Err((ApiError::from(error), None)),
        }
    }

    /// Update one entry: only the fields of `mask` are read from `wire_entry`, laid over the
    /// stored entry, and the result is checked as a whole. An unknown ID is NotFound.
    async fn update(
        &self,
        wire_entry: &wire::Entry,
        mask: &EntryMask,
    ) -> Result<RegistrationEntry, ApiError> {
        if wire_entry.id.is_empty() {
            return Err(ApiError::invalid_argument(
                "id is required to update an entry",
            ));
        }
        additional_attributes_unsupported(wire_entry)
            .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
        let id = entry_id(&wire_entry.id)?;
        let stored = self
            .0
            .store
            .fetch_entry(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found(format!("entry {:?} not found", wire_entry.id)))?;
        let entry = merged(&stored, wire_entry, mask)?;
        check_ids(&self.0.trust_domain, &entry, mask)?;
        if mask.federates_with {
            for trust_domain in &entry.federates_with {
                self.check_federated(trust_domain).await?;
            }
        }
        self.0
            .store
            .update_entry(entry, mask)
            .await
            .map_err(ApiError::from)
    }

    /// SPIRE refuses `federates_with` naming a trust domain it has no bundle for.
    async fn check_federated(&self, trust_domain: &TrustDomain) -> Result<(), ApiError> {
        match self.0.store.fetch_bundle(trust_domain).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ApiError::invalid_argument(format!(
                "federates_with: no bundle for trust domain {trust_domain}: set it first \
                 (bundle set -id spiffe://{trust_domain})"
            ))),
            Err(error) => Err(ApiError::from(error)),
        }
    }
}

fn entry_id(id: &str) -> Result<EntryId, ApiError> {
    EntryId::from_str(id).map_err(|e| ApiError::invalid_argument(format!("id: {e}")))
}

/// `entry` on the wire, with only the fields of `mask` (all when there is none; the ID
/// always).
pub(crate) fn masked(entry: &RegistrationEntry, mask: Option<&wire::EntryMask>) -> wire::Entry {
    let mut out = wire::Entry::from(entry);
    let Some(mask) = mask else { return out };
    let keep = |keep: bool, field: &mut dyn FnMut()| {
        if !keep {
            field();
        }
    };
    keep(mask.spiffe_id, &mut || out.spiffe_id = None);
    keep(mask.parent_id, &mut || out.parent_id = None);
    keep(mask.selectors, &mut || out.selectors.clear());
    keep(mask.x509_svid_ttl, &mut || out.x509_svid_ttl = 0);
    keep(mask.jwt_svid_ttl, &mut || out.jwt_svid_ttl = 0);
    keep(mask.federates_with, &mut || out.federates_with.clear());
    keep(mask.admin, &mut || out.admin = false);
    keep(mask.downstream, &mut || out.downstream = false);
    keep(mask.expires_at, &mut || out.expires_at = 0);
    keep(mask.dns_names, &mut || out.dns_names.clear());
    keep(mask.revision_number, &mut || out.revision_number = 0);
    keep(mask.store_svid, &mut || out.store_svid = false);
    keep(mask.hint, &mut || out.hint.clear());
    keep(mask.created_at, &mut || out.created_at = 0);
    out
}

fn input_mask(mask: &wire::EntryMask) -> EntryMask {
    EntryMask {
        spiffe_id: mask.spiffe_id,
        parent_id: mask.parent_id,
        selectors: mask.selectors,
        x509_svid_ttl: mask.x509_svid_ttl,
        jwt_svid_ttl: mask.jwt_svid_ttl,
        federates_with: mask.federates_with,
        admin: mask.admin,
        downstream: mask.downstream,
        dns_names: mask.dns_names,
        hint: mask.hint,
        store_svid: mask.store_svid,
        expires_at: mask.expires_at,
    }
}

/// The wire filter fields as a datastore filter.
fn entry_filter(
    by_spiffe_id: Option<&wire::Spiffeid>,
    by_parent_id: Option<&wire::Spiffeid>,
    by_selectors: Option<&wire::SelectorMatch>,
    by_federates_with: Option<&wire::FederatesWithMatch>,
    by_hint: Option<String>,
) -> Result<EntryFilter, ApiError> {
    let by_selectors = by_selectors
        .map(|m| {
            let selectors = m
                .selectors
                .iter()
                .map(Selector::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::invalid_argument(format!("by_selectors: {e}")))?;
            Ok::<_, ApiError>(SelectorMatch {
                selectors,
                mode: match_mode(m.r#match)?,
            })
        })
        .transpose()?;
    let by_federates_with = by_federates_with
        .map(|m| {
            let trust_domains = m
                .trust_domains
                .iter()
                .map(|td| {
                    let name = td.strip_prefix("spiffe://").unwrap_or(td);
                    TrustDomain::new(name)
                        .map_err(|e| ApiError::invalid_argument(format!("by_federates_with: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, ApiError>(FederatesWithMatch {
                trust_domains,
                mode: match_mode(m.r#match)?,
            })
        })
        .transpose()?;
    Ok(EntryFilter {
        by_spiffe_id: by_spiffe_id
            .map(|id| spiffe_id("by_spiffe_id", Some(id)))
            .transpose()?,
        by_parent_id: by_parent_id
            .map(|id| spiffe_id("by_parent_id", Some(id)))
            .transpose()?,
        by_selectors,
        by_federates_with,
        by_hint,
    })
}

fn match_mode(value: i32) -> Result<MatchMode, ApiError> {
    Ok(match value {
        0 => MatchMode::Exact,
        1 => MatchMode::Subset,
        2 => MatchMode::Superset,
        3 => MatchMode::Any,
        other => {
            return Err(ApiError::invalid_argument(format!(
                "unknown match behavior {other}"
            )));
        }
    })
}
