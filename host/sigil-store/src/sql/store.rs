//! [`SqlStore`]: the [`DataStore`] over any [`Backend`].
//!
//! Each method moves its arguments into a closure that the backend runs in a read or write
//! transaction; the closure calls the shared code in the sibling modules.

use async_trait::async_trait;
use sigil_types::{
    AttestedAgent, Bundle, EntryId, FederationRelationship, JoinToken, RegistrationEntry, SpiffeId,
    TrustDomain, UnixTime,
};

use super::{
    Backend, agents, bundles, entries, entry_query, entry_scan, events, federation, misc, now,
    schema,
};
use crate::{
    AgentFilter, AgentMask, BundleMask, DataStore, DeleteMode, EntryFilter, EntryMask, Error,
    Event, EventId, FederationRelationshipMask, Page, PageRequest, Result,
};

/// A datastore over one SQL backend.
#[derive(Debug)]
pub(crate) struct SqlStore<B> {
    backend: B,
}

impl<B: Backend> SqlStore<B> {
    /// Migrates the schema (failing on one newer than this build knows) and wraps `backend`.
    pub(crate) async fn open(backend: B) -> Result<Self> {
        let dialect = backend.dialect();
        backend
            .write(move |db| Box::pin(schema::migrate(db, dialect)))
            .await?;
        Ok(Self { backend })
    }
}

#[async_trait]
impl<B: Backend> DataStore for SqlStore<B> {
    async fn create_entry(&self, entry: RegistrationEntry) -> Result<RegistrationEntry> {
        let now = now();
        let mut created = self
            .backend
            .write(move |db| Box::pin(entries::create(db, vec![entry], now)))
            .await?;
        created
            .pop()
            .ok_or_else(|| Error::Backend("create returned no entry".into()))
    }

    async fn create_entries(
        &self,
        entries: Vec<RegistrationEntry>,
    ) -> Result<Vec<RegistrationEntry>> {
        if entries.is_empty() {
            return Ok(entries);
        }
        let now = now();
        self.backend
            .write(move |db| Box::pin(entries::create(db, entries, now)))
            .await
    }

    async fn fetch_entry(&self, id: &EntryId) -> Result<Option<RegistrationEntry>> {
        let id = id.clone();
        self.backend
            .read(move |db| {
                Box::pin(async move { Ok(entry_query::fetch(db, &id).await?.map(|s| s.entry)) })
            })
            .await
    }

    async fn update_entry(
        &self,
        entry: RegistrationEntry,
        mask: &EntryMask,
    ) -> Result<RegistrationEntry> {
        let (mask, now) = (*mask, now());
        self.backend
            .write(move |db| Box::pin(entries::update(db, entry, mask, now)))
            .await
    }

    async fn delete_entry(&self, id: &EntryId) -> Result<RegistrationEntry> {
        let (id, now) = (id.clone(), now());
        self.backend
            .write(move |db| Box::pin(async move { entries::delete(db, &id, now).await }))
            .await
    }

    async fn list_entries(
        &self,
        filter: &EntryFilter,
        page: Option<&PageRequest>,
    ) -> Result<Page<RegistrationEntry>> {
        let (filter, page) = (filter.clone(), page.cloned());
        self.backend
            .read(move |db| {
                Box::pin(async move { entry_query::list(db, &filter, page.as_ref()).await })
            })
            .await
    }

    async fn scan_entries(&self, page: &PageRequest) -> Result<Page<RegistrationEntry>> {
        let page = page.clone();
        self.backend
            .read(move |db| Box::pin(async move { entry_scan::scan(db, &page).await }))
            .await
    }

    async fn count_entries(&self, filter: &EntryFilter) -> Result<u64> {
        let filter = filter.clone();
        self.backend
            .read(move |db| Box::pin(async move { entry_query::count(db, &filter).await }))
            .await
    }

    async fn prune_entries(&self, expires_before: UnixTime) -> Result<u64> {
        let now = now();
        self.backend
            .write(move |db| Box::pin(entries::prune(db, expires_before, now)))
            .await
    }

    async fn create_agent(&self, agent: AttestedAgent) -> Result<AttestedAgent> {
        let now = now();
        self.backend
            .write(move |db| Box::pin(agents::create(db, agent, now)))
            .await
    }

    async fn fetch_agent(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedAgent>> {
        let id = spiffe_id.clone();
        self.backend
            .read(move |db| Box::pin(async move { agents::fetch(db, &id).await }))
            .await
    }

    async fn update_agent(&self, agent: AttestedAgent, mask: &AgentMask) -> Result<AttestedAgent> {
        let (mask, now) = (*mask, now());
        self.backend
            .write(move |db| Box::pin(agents::update(db, agent, mask, now)))
            .await
    }

    async fn delete_agent(&self, spiffe_id: &SpiffeId) -> Result<AttestedAgent> {
        let (id, now) = (spiffe_id.clone(), now());
        self.backend
            .write(move |db| Box::pin(async move { agents::delete(db, &id, now).await }))
            .await
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: Option<&PageRequest>,
    ) -> Result<Page<AttestedAgent>> {
        let (filter, page) = (filter.clone(), page.cloned());
        self.backend
            .read(move |db| Box::pin(async move { agents::list(db, &filter, page.as_ref()).await }))
            .await
    }

    async fn count_agents(&self, filter: &AgentFilter) -> Result<u64> {
        let filter = filter.clone();
        self.backend
            .read(move |db| Box::pin(async move { agents::count(db, &filter).await }))
            .await
    }

    async fn create_bundle(&self, bundle: Bundle) -> Result<Bundle> {
        self.backend
            .write(move |db| Box::pin(bundles::create(db, bundle)))
            .await
    }

    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<Bundle>> {
        let td = trust_domain.clone();
        self.backend
            .read(move |db| Box::pin(async move { bundles::fetch(db, &td).await }))
            .await
    }

    async fn list_bundles(&self, page: Option<&PageRequest>) -> Result<Page<Bundle>> {
        let page = page.cloned();
        self.backend
            .read(move |db| Box::pin(async move { bundles::list(db, page.as_ref()).await }))
            .await
    }

    async fn count_bundles(&self) -> Result<u64> {
        self.backend.read(|db| Box::pin(bundles::count(db))).await
    }

    async fn update_bundle(&self, bundle: Bundle, mask: &BundleMask) -> Result<Bundle> {
        let mask = *mask;
        self.backend
            .write(move |db| Box::pin(bundles::update(db, bundle, mask)))
            .await
    }

    async fn set_bundle(&self, bundle: Bundle) -> Result<Bundle> {
        self.backend
            .write(move |db| Box::pin(bundles::set(db, bundle)))
            .await
    }

    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle> {
        self.backend
            .write(move |db| Box::pin(bundles::append(db, bundle)))
            .await
    }

    async fn delete_bundle(&self, trust_domain: &TrustDomain, mode: DeleteMode) -> Result<()> {
        let (td, now) = (trust_domain.clone(), now());
        self.backend
            .write(move |db| Box::pin(async move { bundles::delete(db, &td, mode, now).await }))
            .await
    }

    async fn prune_bundle(
        &self,
        trust_domain: &TrustDomain,
        expires_before: UnixTime,
    ) -> Result<bool> {
        let td = trust_domain.clone();
        self.backend
            .write(move |db| Box::pin(async move { bundles::prune(db, &td, expires_before).await }))
            .await
    }

    async fn create_join_token(&self, token: JoinToken) -> Result<()> {
        self.backend
            .write(move |db| Box::pin(misc::create_join_token(db, token)))
            .await
    }

    async fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>> {
        let token = token.to_owned();
        self.backend
            .read(move |db| Box::pin(async move { misc::fetch_join_token(db, &token).await }))
            .await
    }

    async fn delete_join_token(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.backend
            .write(move |db| Box::pin(async move { misc::delete_join_token(db, &token).await }))
            .await
    }

    async fn prune_join_tokens(&self, expires_before: UnixTime) -> Result<u64> {
        self.backend
            .write(move |db| Box::pin(misc::prune_join_tokens(db, expires_before)))
            .await
    }

    async fn take_join_token(&self, token: &str, now: UnixTime) -> Result<JoinToken> {
        let token = token.to_owned();
        // The inner result commits: an expired token is deleted even though the call fails.
        self.backend
            .write(move |db| Box::pin(async move { misc::take_join_token(db, &token, now).await }))
            .await?
    }

    async fn set_ca_journal(&self, name: &str, journal: Vec<u8>) -> Result<()> {
        let name = name.to_owned();
        self.backend
            .write(move |db| {
                Box::pin(async move { misc::set_ca_journal(db, &name, journal).await })
            })
            .await
    }

    async fn fetch_ca_journal(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.backend
            .read(move |db| Box::pin(async move { misc::fetch_ca_journal(db, &name).await }))
            .await
    }

    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship> {
        self.backend
            .write(move |db| Box::pin(federation::create(db, relationship)))
            .await
    }

    async fn fetch_federation_relationship(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<Option<FederationRelationship>> {
        let td = trust_domain.clone();
        self.backend
            .read(move |db| Box::pin(async move { federation::fetch(db, &td).await }))
            .await
    }

    async fn list_federation_relationships(
        &self,
        page: Option<&PageRequest>,
    ) -> Result<Page<FederationRelationship>> {
        let page = page.cloned();
        self.backend
            .read(move |db| Box::pin(async move { federation::list(db, page.as_ref()).await }))
            .await
    }

    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
        mask: &FederationRelationshipMask,
    ) -> Result<FederationRelationship> {
        let mask = *mask;
        self.backend
            .write(move |db| Box::pin(federation::update(db, relationship, mask)))
            .await
    }

    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()> {
        let td = trust_domain.clone();
        self.backend
            .write(move |db| Box::pin(async move { federation::delete(db, &td).await }))
            .await
    }

    async fn list_events(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        self.backend
            .read(move |db| Box::pin(events::list(db, after, limit)))
            .await
    }

    async fn latest_event_id(&self) -> Result<EventId> {
        self.backend.read(|db| Box::pin(events::latest(db))).await
    }

    async fn prune_events(&self, before: UnixTime) -> Result<u64> {
        self.backend
            .write(move |db| Box::pin(events::prune(db, before)))
            .await
    }
}
