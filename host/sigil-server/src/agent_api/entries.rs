//! The entry service as agents see it: the entries the calling agent is authorized for,
//! from the entry cache, never from the database.

use std::sync::Arc;

use sigil_proto::spire::api::server::entry::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_types::RegistrationEntry;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::entry::EntryApi;
use crate::api::entry::masked;
use crate::api_error::ApiError;
use crate::setup::Server;

/// Up to this many authorized entries are sent in full at once; above it the agent gets
/// revisions first and asks for the entries it lacks.
const FULL_SYNC_LIMIT: usize = 10_000;
/// Entries or revisions per response message, keeping each well under gRPC's 4 MiB.
const PAGE: usize = 500;

/// The entry service for agents.
pub(crate) struct EntryPeerApi(pub(crate) Arc<Server>);

type SyncSender = mpsc::Sender<Result<api::SyncAuthorizedEntriesResponse, Status>>;

#[tonic::async_trait]
impl api::entry_server::Entry for EntryPeerApi {
    async fn get_authorized_entries(
        &self,
        request: Request<api::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<api::GetAuthorizedEntriesResponse>, Status> {
        let agent_id = super::calling_agent(&self.0, &request).await?;
        let mask = request.into_inner().output_mask;
        let entries = self
            .0
            .cache
            .authorized_entries(&agent_id)
            .iter()
            .map(|entry| masked(entry, mask.as_ref()))
            .collect();
        Ok(Response::new(api::GetAuthorizedEntriesResponse { entries }))
    }

    type SyncAuthorizedEntriesStream =
        ReceiverStream<Result<api::SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        request: Request<Streaming<api::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        let agent_id = super::calling_agent(&self.0, &request).await?;
        let mut requests = request.into_inner();
        let first = requests.message().await?.ok_or_else(|| {
            ApiError::invalid_argument("the stream ended before the first request")
        })?;
        let mask = first.output_mask;
        let mut entries = self.0.cache.authorized_entries(&agent_id);
        entries.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let (send, receive) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Err(error) = sync(&entries, mask.as_ref(), &mut requests, &send).await {
                let _ = send.send(Err(error.into())).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receive)))
    }

    async fn count_entries(
        &self,
        request: Request<api::CountEntriesRequest>,
    ) -> Result<Response<api::CountEntriesResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).count_entries(request).await
    }

    async fn list_entries(
        &self,
        request: Request<api::ListEntriesRequest>,
    ) -> Result<Response<api::ListEntriesResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).list_entries(request).await
    }

    async fn get_entry(
        &self,
        request: Request<api::GetEntryRequest>,
    ) -> Result<Response<wire::Entry>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).get_entry(request).await
    }

    async fn batch_create_entry(
        &self,
        request: Request<api::BatchCreateEntryRequest>,
    ) -> Result<Response<api::BatchCreateEntryResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).batch_create_entry(request).await
    }

    async fn batch_update_entry(
        &self,
        request: Request<api::BatchUpdateEntryRequest>,
    ) -> Result<Response<api::BatchUpdateEntryResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).batch_update_entry(request).await
    }

    async fn batch_delete_entry(
        &self,
        request: Request<api::BatchDeleteEntryRequest>,
    ) -> Result<Response<api::BatchDeleteEntryResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        EntryApi(self.0.clone()).batch_delete_entry(request).await
    }
}

/// SPIRE's sync: a small set is sent whole, in pages; a large one as revisions first, then
/// the entries the agent asks for by ID, until it closes the stream.
async fn sync(
    entries: &[Arc<RegistrationEntry>],
    mask: Option<&wire::EntryMask>,
    requests: &mut Streaming<api::SyncAuthorizedEntriesRequest>,
    send: &SyncSender,
) -> Result<(), ApiError> {
    if entries.len() <= FULL_SYNC_LIMIT {
        return send_entries(entries.iter().map(|e| masked(e, mask)).collect(), send).await;
    }
    let revisions: Vec<api::EntryRevision> = entries
        .iter()
        .map(|e| api::EntryRevision {
            id: e.id.as_str().to_owned(),
            revision_number: e.revision_number,
            created_at: e.created_at,
        })
        .collect();
    let pages = revisions.chunks(PAGE).count();
    for (index, page) in revisions.chunks(PAGE).enumerate() {
        respond(
            send,
            api::SyncAuthorizedEntriesResponse {
                entry_revisions: page.to_vec(),
                entries: Vec::new(),
                more: index + 1 < pages,
            },
        )
        .await?;
    }
    while let Some(request) = requests.message().await.map_err(ApiError::stream)? {
        let wanted: Vec<wire::Entry> = request
            .ids
            .iter()
            .filter_map(|id| {
                entries
                    .binary_search_by(|e| e.id.as_str().cmp(id))
                    .ok()
                    .map(|at| masked(&entries[at], mask))
            })
            .collect();
        send_entries(wanted, send).await?;
    }
    Ok(())
}

/// `entries` in pages, `more` set on all but the last (one empty page when there are none).
async fn send_entries(entries: Vec<wire::Entry>, send: &SyncSender) -> Result<(), ApiError> {
    if entries.is_empty() {
        return respond(send, api::SyncAuthorizedEntriesResponse::default()).await;
    }
    let pages = entries.chunks(PAGE).count();
    for (index, page) in entries.chunks(PAGE).enumerate() {
        respond(
            send,
            api::SyncAuthorizedEntriesResponse {
                entry_revisions: Vec::new(),
                entries: page.to_vec(),
                more: index + 1 < pages,
            },
        )
        .await?;
    }
    Ok(())
}

async fn respond(
    send: &SyncSender,
    response: api::SyncAuthorizedEntriesResponse,
) -> Result<(), ApiError> {
    send.send(Ok(response))
        .await
        .map_err(|_| ApiError::Cancelled("the agent went away".into()))
}
