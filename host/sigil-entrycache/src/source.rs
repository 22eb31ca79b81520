//! [`CacheSource`]: the seven datastore reads the cache needs.

use std::future::Future;

use sigil_store::{AgentFilter, DataStore, EntryFilter, Event, EventId, Page, PageRequest, Result};
use sigil_types::{AttestedAgent, EntryId, RegistrationEntry, SpiffeId};

/// Where the cache loads from and which event log it follows. Every
/// [`DataStore`](sigil_store::DataStore) is one (`Arc<dyn DataStore>` included); tests wrap a
/// store to delay or hide events.
pub trait CacheSource: Send + Sync {
    /// See [`DataStore::scan_entries`]: how the cache loads its entries.
    fn scan_entries(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<RegistrationEntry>>> + Send;

    /// See [`DataStore::count_entries`]: sizes the index before a load.
    fn count_entries(&self, filter: &EntryFilter) -> impl Future<Output = Result<u64>> + Send;

    /// See [`DataStore::list_agents`].
    fn list_agents(
        &self,
        filter: &AgentFilter,
        page: Option<&PageRequest>,
    ) -> impl Future<Output = Result<Page<AttestedAgent>>> + Send;

    /// See [`DataStore::fetch_entry`].
    fn fetch_entry(
        &self,
        id: &EntryId,
    ) -> impl Future<Output = Result<Option<RegistrationEntry>>> + Send;

    /// See [`DataStore::fetch_agent`].
    fn fetch_agent(
        &self,
        spiffe_id: &SpiffeId,
    ) -> impl Future<Output = Result<Option<AttestedAgent>>> + Send;

    /// See [`DataStore::list_events`].
    fn list_events(
        &self,
        after: EventId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// See [`DataStore::latest_event_id`].
    fn latest_event_id(&self) -> impl Future<Output = Result<EventId>> + Send;
}

impl<T: DataStore + ?Sized> CacheSource for T {
    async fn scan_entries(&self, page: &PageRequest) -> Result<Page<RegistrationEntry>> {
        DataStore::scan_entries(self, page).await
    }

    async fn count_entries(&self, filter: &EntryFilter) -> Result<u64> {
        DataStore::count_entries(self, filter).await
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: Option<&PageRequest>,
    ) -> Result<Page<AttestedAgent>> {
        DataStore::list_agents(self, filter, page).await
    }

    async fn fetch_entry(&self, id: &EntryId) -> Result<Option<RegistrationEntry>> {
        DataStore::fetch_entry(self, id).await
    }

    async fn fetch_agent(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedAgent>> {
        DataStore::fetch_agent(self, spiffe_id).await
    }

    async fn list_events(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        DataStore::list_events(self, after, limit).await
    }

    async fn latest_event_id(&self) -> Result<EventId> {
        DataStore::latest_event_id(self).await
    }
}
