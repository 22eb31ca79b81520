//! The [`DataStore`] trait.

use std::fmt;

use async_trait::async_trait;
use sigil_types::{
    AttestedAgent, Bundle, EntryId, FederationRelationship, JoinToken, RegistrationEntry, SpiffeId,
    TrustDomain, UnixTime,
};

use crate::{
    AgentFilter, AgentMask, BundleMask, DeleteMode, EntryFilter, EntryMask, Event, EventId,
    FederationRelationshipMask, Page, PageRequest, Result,
};

/// Everything the server persists: registration entries, attested agents, bundles, join
/// tokens, CA journals, federation relationships, and the change-event log that lets an
/// in-memory cache follow entries and agents.
///
/// Used as `Arc<dyn DataStore>`. Every call is atomic: a write that fails leaves nothing
/// behind, and every write to entries or agents appends its [`Event`]s in the same
/// transaction. `fetch_…` calls return `Ok(None)` for a missing object; updates and deletes of
/// a missing object fail with [`Error::NotFound`](crate::Error::NotFound).
#[async_trait]
pub trait DataStore: Send + Sync + fmt::Debug {
    // === Registration entries ===

    /// Stores a new entry after [`canonicalize`](RegistrationEntry::canonicalize) and
    /// [`validate`](RegistrationEntry::validate); sets `created_at` to now and
    /// `revision_number` to 0, and returns the entry as stored. An entry with the same ID, or
    /// with the same SPIFFE ID, parent ID and selector set, is refused with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) carrying the stored one.
    async fn create_entry(&self, entry: RegistrationEntry) -> Result<RegistrationEntry>;

    /// [`create_entry`](Self::create_entry) for many entries in one transaction: either all
    /// are stored, or none is and the first failure is returned (two entries of the batch that
    /// duplicate each other count as a failure too). Returns them in the order given.
    async fn create_entries(
        &self,
        entries: Vec<RegistrationEntry>,
    ) -> Result<Vec<RegistrationEntry>>;

    /// The entry with this ID.
    async fn fetch_entry(&self, id: &EntryId) -> Result<Option<RegistrationEntry>>;

    /// Copies the fields set in `mask` from `entry` onto the stored entry with `entry.id`,
    /// increments its revision number and returns it. Refused with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) when the result would duplicate
    /// another entry, and with [`Error::InvalidArgument`](crate::Error::InvalidArgument) when
    /// it would be invalid.
    async fn update_entry(
        &self,
        entry: RegistrationEntry,
        mask: &EntryMask,
    ) -> Result<RegistrationEntry>;

    /// Deletes the entry and returns it.
    async fn delete_entry(&self, id: &EntryId) -> Result<RegistrationEntry>;

    /// The entries matching `filter`, in entry-ID order, one page at a time when `page` is set.
    async fn list_entries(
        &self,
        filter: &EntryFilter,
        page: Option<&PageRequest>,
    ) -> Result<Page<RegistrationEntry>>;

    /// Every entry, one page at a time, in an order the store chooses (not entry-ID order):
    /// the cheapest way to read them all, as a cache load does. The page token is opaque and
    /// valid only for this method. Each page is its own transaction, as with
    /// [`list_entries`](Self::list_entries): an entry that exists throughout the scan is
    /// returned exactly once, and one written during the scan may be returned in its old or new
    /// state or not at all, so a caller that must see every write follows the change-event log
    /// from a position read before the scan.
    async fn scan_entries(&self, page: &PageRequest) -> Result<Page<RegistrationEntry>>;

    /// How many entries match `filter`.
    async fn count_entries(&self, filter: &EntryFilter) -> Result<u64>;

    /// Deletes the entries whose `expires_at` is strictly before `expires_before`; returns how
    /// many.
    async fn prune_entries(&self, expires_before: UnixTime) -> Result<u64>;

    // === Attested agents ===

    /// Stores a newly attested agent (selectors sorted and deduplicated).
    async fn create_agent(&self, agent: AttestedAgent) -> Result<AttestedAgent>;

    /// The agent with this SPIFFE ID.
    async fn fetch_agent(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedAgent>>;

    /// Copies the fields set in `mask` from `agent` onto the stored agent with
    /// `agent.spiffe_id` and returns it.
    async fn update_agent(&self, agent: AttestedAgent, mask: &AgentMask) -> Result<AttestedAgent>;

    /// Deletes the agent and returns it.
    async fn delete_agent(&self, spiffe_id: &SpiffeId) -> Result<AttestedAgent>;

    /// The agents matching `filter`, in SPIFFE-ID order, paged when `page` is set.
    async fn list_agents(
        &self,
        filter: &AgentFilter,
        page: Option<&PageRequest>,
    ) -> Result<Page<AttestedAgent>>;

    /// How many agents match `filter`.
    async fn count_agents(&self, filter: &AgentFilter) -> Result<u64>;

    // === Bundles ===

    /// Stores the bundle of a trust domain that has none.
    async fn create_bundle(&self, bundle: Bundle) -> Result<Bundle>;

    /// The bundle of this trust domain.
    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<Bundle>>;

    /// The bundles, in trust-domain order, paged when `page` is set.
    async fn list_bundles(&self, page: Option<&PageRequest>) -> Result<Page<Bundle>>;

    /// How many bundles are stored.
    async fn count_bundles(&self) -> Result<u64>;

    /// Copies the fields set in `mask` onto the stored bundle of `bundle.trust_domain`.
    async fn update_bundle(&self, bundle: Bundle, mask: &BundleMask) -> Result<Bundle>;

    /// Stores the bundle, replacing any stored for its trust domain.
    async fn set_bundle(&self, bundle: Bundle) -> Result<Bundle>;

    /// Adds the authorities of `bundle` that the stored bundle lacks (see
    /// [`Bundle::append`]), or stores it when none is; returns the result.
    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle>;

    /// Deletes the bundle; `mode` says what happens to entries that federate with it.
    async fn delete_bundle(&self, trust_domain: &TrustDomain, mode: DeleteMode) -> Result<()>;

    /// Removes the authorities that expired before `expires_before` (see [`Bundle::prune`]).
    /// Returns whether the bundle changed. Pruning never removes the last X.509 authority:
    /// when every one expired the bundle is left alone and `false` returned (SPIRE's rule).
    async fn prune_bundle(
        &self,
        trust_domain: &TrustDomain,
        expires_before: UnixTime,
    ) -> Result<bool>;

    // === Join tokens ===

    /// Stores a join token.
    async fn create_join_token(&self, token: JoinToken) -> Result<()>;

    /// The join token with this secret.
    async fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>>;

    /// Deletes a join token.
    async fn delete_join_token(&self, token: &str) -> Result<()>;

    /// Deletes the join tokens that expired strictly before `expires_before`; returns how many.
    async fn prune_join_tokens(&self, expires_before: UnixTime) -> Result<u64>;

    /// Atomically consumes a join token: deletes it and returns it. A token that is absent or
    /// already used fails with [`Error::NotFound`](crate::Error::NotFound); one whose
    /// `expires_at` is before `now` is deleted all the same and fails with
    /// [`Error::JoinTokenExpired`](crate::Error::JoinTokenExpired).
    async fn take_join_token(&self, token: &str, now: UnixTime) -> Result<JoinToken>;

    // === CA journals ===

    /// Stores the CA journal `name` (opaque bytes), replacing the previous one.
    async fn set_ca_journal(&self, name: &str, journal: Vec<u8>) -> Result<()>;

    /// The CA journal `name`.
    async fn fetch_ca_journal(&self, name: &str) -> Result<Option<Vec<u8>>>;

    // === Federation relationships ===

    /// Stores a federation relationship. A `trust_domain_bundle` that is set is stored as the
    /// trust domain's bundle (replacing any), as SPIRE does.
    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship>;

    /// The relationship with this trust domain, with its bundle when one is stored.
    async fn fetch_federation_relationship(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<Option<FederationRelationship>>;

    /// The relationships, in trust-domain order, paged when `page` is set.
    async fn list_federation_relationships(
        &self,
        page: Option<&PageRequest>,
    ) -> Result<Page<FederationRelationship>>;

    /// Copies the fields set in `mask` onto the stored relationship.
    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
        mask: &FederationRelationshipMask,
    ) -> Result<FederationRelationship>;

    /// Deletes the relationship (the trust domain's bundle stays).
    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()>;

    // === Change-event log ===

    /// Up to `limit` events with an ID greater than `after`, in ID order.
    async fn list_events(&self, after: EventId, limit: u32) -> Result<Vec<Event>>;

    /// The highest event ID stored, 0 when the log is empty.
    async fn latest_event_id(&self) -> Result<EventId>;

    /// Deletes the events created strictly before `before`; returns how many.
    async fn prune_events(&self, before: UnixTime) -> Result<u64>;
}
