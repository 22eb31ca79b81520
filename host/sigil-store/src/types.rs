//! Requests and results of the [`DataStore`](crate::DataStore) calls: filters, field masks,
//! paging, delete modes and change events.

use sigil_types::{Selector, SpiffeId, TrustDomain, UnixTime};

/// How a set given in a filter is compared with the set an object carries (SPIRE's
/// `MatchBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// The object's set equals the given set.
    Exact,
    /// The object's set is a non-empty subset of the given set: every element the object has
    /// is in the given set. This is how an agent finds the entries a workload's selectors
    /// satisfy. An object with an empty set (an entry that federates with nobody) never
    /// matches, as in SPIRE.
    Subset,
    /// The object's set contains every element of the given set (and maybe more).
    Superset,
    /// The object's set shares at least one element with the given set.
    Any,
}

/// A selector-set filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorMatch {
    /// The given set; must not be empty. Order and duplicates do not matter.
    pub selectors: Vec<Selector>,
    /// How it is compared.
    pub mode: MatchMode,
}

/// A federates-with filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatesWithMatch {
    /// The given set of trust domains; must not be empty.
    pub trust_domains: Vec<TrustDomain>,
    /// How it is compared.
    pub mode: MatchMode,
}

/// Which entries [`list_entries`](crate::DataStore::list_entries) and
/// [`count_entries`](crate::DataStore::count_entries) return. Every filter that is set must
/// hold (they combine with AND); the default filter matches every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Entries with this SPIFFE ID.
    pub by_spiffe_id: Option<SpiffeId>,
    /// Entries with this parent ID.
    pub by_parent_id: Option<SpiffeId>,
    /// Entries whose selectors match.
    pub by_selectors: Option<SelectorMatch>,
    /// Entries whose federated trust domains match.
    pub by_federates_with: Option<FederatesWithMatch>,
    /// Entries with exactly this hint.
    pub by_hint: Option<String>,
}

/// Which agents [`list_agents`](crate::DataStore::list_agents) and
/// [`count_agents`](crate::DataStore::count_agents) return; filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Agents attested by this node attestor.
    pub by_attestation_type: Option<String>,
    /// Agents that are (or are not) banned.
    pub by_banned: Option<bool>,
    /// Agents that may (or may not) re-attest.
    pub by_can_reattest: Option<bool>,
    /// Agents whose current SVID expires strictly before this time.
    pub by_expires_before: Option<UnixTime>,
    /// Agents whose selectors match.
    pub by_selectors: Option<SelectorMatch>,
}

/// Asks for one page of a listing. Pages follow the object's key (entry ID, SPIFFE ID, trust
/// domain name) in byte order, and the token is the position after the previous page, so
/// objects created or deleted between calls never shift the pages (keyset pagination).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items; must be positive.
    pub page_size: u32,
    /// `None` for the first page, then the previous page's [`Page::next_token`].
    pub token: Option<String>,
}

impl PageRequest {
    /// The first page of `page_size` items.
    pub fn first(page_size: u32) -> Self {
        Self {
            page_size,
            token: None,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Opaque token for the next page; `None` when this page is the last.
    pub next_token: Option<String>,
}

/// Which fields [`update_entry`](crate::DataStore::update_entry) copies from the given entry
/// (SPIRE's `EntryMask`). Fields left `false` keep their stored value. The entry ID selects the
/// entry; `revision_number` and `created_at` are maintained by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryMask {
    /// Copy `spiffe_id`.
    pub spiffe_id: bool,
    /// Copy `parent_id`.
    pub parent_id: bool,
    /// Copy `selectors`.
    pub selectors: bool,
    /// Copy `x509_svid_ttl`.
    pub x509_svid_ttl: bool,
    /// Copy `jwt_svid_ttl`.
    pub jwt_svid_ttl: bool,
    /// Copy `federates_with`.
    pub federates_with: bool,
    /// Copy `admin`.
    pub admin: bool,
    /// Copy `downstream`.
    pub downstream: bool,
    /// Copy `dns_names`.
    pub dns_names: bool,
    /// Copy `hint`.
    pub hint: bool,
    /// Copy `store_svid`.
    pub store_svid: bool,
    /// Copy `expires_at`.
    pub expires_at: bool,
}

impl EntryMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        spiffe_id: true,
        parent_id: true,
        selectors: true,
        x509_svid_ttl: true,
        jwt_svid_ttl: true,
        federates_with: true,
        admin: true,
        downstream: true,
        dns_names: true,
        hint: true,
        store_svid: true,
        expires_at: true,
    };
}

/// Which fields [`update_agent`](crate::DataStore::update_agent) copies from the given agent.
/// The SPIFFE ID selects the agent; `attestation_type` is fixed at attestation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentMask {
    /// Copy `cert_serial_number`.
    pub cert_serial_number: bool,
    /// Copy `cert_not_after`.
    pub cert_not_after: bool,
    /// Copy `new_cert_serial_number`.
    pub new_cert_serial_number: bool,
    /// Copy `new_cert_not_after`.
    pub new_cert_not_after: bool,
    /// Replace the selectors.
    pub selectors: bool,
    /// Copy `banned`.
    pub banned: bool,
    /// Copy `can_reattest`.
    pub can_reattest: bool,
    /// Copy `agent_version`.
    pub agent_version: bool,
}

impl AgentMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        cert_serial_number: true,
        cert_not_after: true,
        new_cert_serial_number: true,
        new_cert_not_after: true,
        selectors: true,
        banned: true,
        can_reattest: true,
        agent_version: true,
    };
}

/// Which fields [`update_bundle`](crate::DataStore::update_bundle) copies from the given bundle
/// (SPIRE's `BundleMask`). The trust domain selects the bundle. The sequence number changes
/// only when masked, as in SPIRE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleMask {
    /// Replace the X.509 authorities.
    pub x509_authorities: bool,
    /// Replace the JWT authorities.
    pub jwt_authorities: bool,
    /// Copy `refresh_hint`.
    pub refresh_hint: bool,
    /// Copy `sequence_number`.
    pub sequence_number: bool,
}

impl BundleMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        x509_authorities: true,
        jwt_authorities: true,
        refresh_hint: true,
        sequence_number: true,
    };
}

/// Which fields
/// [`update_federation_relationship`](crate::DataStore::update_federation_relationship) copies.
/// The trust domain selects the relationship.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FederationRelationshipMask {
    /// Copy `bundle_endpoint_url`.
    pub bundle_endpoint_url: bool,
    /// Copy `profile` (with its endpoint SPIFFE ID).
    pub profile: bool,
    /// Store `trust_domain_bundle` (when it is `Some`) as the trust domain's bundle.
    pub trust_domain_bundle: bool,
}

impl FederationRelationshipMask {
    /// Every updatable field.
    pub const ALL: Self = Self {
        bundle_endpoint_url: true,
        profile: true,
        trust_domain_bundle: true,
    };
}

/// What [`delete_bundle`](crate::DataStore::delete_bundle) does with the entries that federate
/// with the bundle's trust domain; the modes of SPIRE's `DeleteBundle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeleteMode {
    /// Refuse with [`Error::BundleInUse`](crate::Error::BundleInUse) while any entry
    /// federates with the trust domain. Nothing is changed.
    #[default]
    Restrict,
    /// Delete the bundle and every entry that federates with its trust domain.
    Delete,
    /// Delete the bundle and remove its trust domain from the `federates_with` of every entry
    /// that has it; the entries stay (revision bumped).
    Dissociate,
}

/// A change-event ID: positive, increasing in the order the IDs were assigned.
pub type EventId = i64;

/// One record of the change-event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its ID.
    pub id: EventId,
    /// What kind of object changed.
    pub kind: EventKind,
    /// The object's key: the entry ID or the agent's SPIFFE ID.
    pub object_id: String,
    /// What happened to it.
    pub op: EventOp,
    /// When, in Unix seconds.
    pub created_at: UnixTime,
}

/// The kinds of object the change-event log follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A registration entry.
    Entry,
    /// An attested agent.
    Agent,
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventOp {
    /// It was created.
    Created,
    /// It was changed.
    Updated,
    /// It was deleted.
    Deleted,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Agent => "agent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "entry" => Some(Self::Entry),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

impl EventOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}
