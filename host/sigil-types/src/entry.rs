//! Registration entries: which SPIFFE ID a workload or node gets, given which selectors.

use std::fmt;
use std::str::FromStr;

use crate::selector::canonicalize;
use crate::{Selector, SpiffeId, TrustDomain, UnixTime};

/// SPIRE caps client-assigned entry IDs at 255 characters.
const MAX_ENTRY_ID_LEN: usize = 255;
/// SPIRE caps the hint at 1024 characters.
const MAX_HINT_LEN: usize = 1024;
const MAX_DNS_NAME_LEN: usize = 253;
const MAX_DNS_LABEL_LEN: usize = 63;

/// Why an entry, or one of its fields, is invalid. Every variant names the field, so an API can
/// answer InvalidArgument with a message the operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// A field's value is malformed or not allowed.
    #[error("invalid registration entry: {field}: {reason}")]
    InvalidField {
        /// The field's name as SPIRE's API spells it (`spiffe_id`, `selectors`, `x509_svid_ttl`…).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl EntryError {
    fn field(field: &'static str, reason: impl fmt::Display) -> Self {
        Self::InvalidField {
            field,
            reason: reason.to_string(),
        }
    }

    /// The field this error is about.
    pub fn field_name(&self) -> &'static str {
        match self {
            Self::InvalidField { field, .. } => field,
        }
    }
}

/// A registration entry ID: 1 to 255 characters of `[A-Za-z0-9._-]`, as SPIRE allows for
/// client-assigned IDs. Server-assigned IDs are random UUIDs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EntryId(String);

impl EntryId {
    /// Parses a client-assigned entry ID.
    pub fn new(id: &str) -> Result<Self, EntryError> {
        if id.is_empty() {
            return Err(EntryError::field("id", "entry ID is empty"));
        }
        if id.len() > MAX_ENTRY_ID_LEN {
            return Err(EntryError::field(
                "id",
                format!("entry ID is longer than {MAX_ENTRY_ID_LEN} characters"),
            ));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(EntryError::field(
                "id",
                format!("entry ID contains invalid character {c:?}"),
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// A fresh random ID (a UUIDv4, as SPIRE assigns).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EntryId {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({})", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EntryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A registration entry, with every field SPIRE's `spire.api.types.Entry` has.
///
/// Build one with [`RegistrationEntry::new`] or set the public fields, then call
/// [`RegistrationEntry::validate`] (datastores do so on every write). `selectors` are kept
/// sorted and deduplicated by [`RegistrationEntry::canonicalize`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistrationEntry {
    /// Unique ID; client-assigned or random.
    pub id: EntryId,
    /// The identity the entry grants.
    pub spiffe_id: SpiffeId,
    /// Who may obtain it: an agent's ID, a node-alias entry's ID, or another workload's ID.
    pub parent_id: SpiffeId,
    /// What the caller must show; at least one.
    pub selectors: Vec<Selector>,
    /// X509-SVID lifetime in seconds; 0 means the server's default.
    pub x509_svid_ttl: u32,
    /// JWT-SVID lifetime in seconds; 0 means the server's default.
    pub jwt_svid_ttl: u32,
    /// Foreign trust domains whose bundles the workload also receives.
    pub federates_with: Vec<TrustDomain>,
    /// The SVID may call the server's admin APIs.
    pub admin: bool,
    /// The SVID may mint a downstream CA.
    pub downstream: bool,
    /// Extra DNS SANs; the first also becomes the certificate's common name.
    pub dns_names: Vec<String>,
    /// Free-text hint for workloads holding several SVIDs.
    pub hint: String,
    /// The agent stores the SVID through a SVIDStore plugin instead of serving it.
    pub store_svid: bool,
    /// After this time the entry is pruned; `None` never expires.
    pub expires_at: Option<UnixTime>,
    /// Incremented by the datastore on every update.
    pub revision_number: i64,
    /// Set by the datastore on create.
    pub created_at: UnixTime,
}

impl RegistrationEntry {
    /// A new entry with a random ID, the given identity, parent and selectors, and every other
    /// field at its default.
    pub fn new(spiffe_id: SpiffeId, parent_id: SpiffeId, selectors: Vec<Selector>) -> Self {
        let mut entry = Self {
            id: EntryId::random(),
            spiffe_id,
            parent_id,
            selectors,
            x509_svid_ttl: 0,
            jwt_svid_ttl: 0,
            federates_with: Vec::new(),
            admin: false,
            downstream: false,
            dns_names: Vec::new(),
            hint: String::new(),
            store_svid: false,
            expires_at: None,
            revision_number: 0,
            created_at: 0,
        };
        entry.canonicalize();
        entry
    }

    /// Sorts and deduplicates the list fields, so two entries that differ only in order
    /// compare equal and the duplicate check is exact.
    pub fn canonicalize(&mut self) {
        canonicalize(&mut self.selectors);
        self.federates_with.sort();
        self.federates_with.dedup();
        self.dns_names.dedup();
    }

    /// Checks the rules that the field types alone do not enforce.
    pub fn validate(&self) -> Result<(), EntryError> {
        if self.selectors.is_empty() {
            return Err(EntryError::field(
                "selectors",
                "at least one selector is required",
            ));
        }
        if self.store_svid {
            let first = self.selectors[0].selector_type();
            if self.selectors.iter().any(|s| s.selector_type() != first) {
                return Err(EntryError::field(
                    "selectors",
                    "selector types must be the same when store SVID is enabled",
                ));
            }
        }
        for name in &self.dns_names {
            validate_dns_name(name).map_err(|reason| EntryError::field("dns_names", reason))?;
        }
        if self.hint.len() > MAX_HINT_LEN {
            return Err(EntryError::field(
                "hint",
                format!("hint is longer than {MAX_HINT_LEN} characters"),
            ));
        }
        if self.hint.chars().any(char::is_control) {
            return Err(EntryError::field(
                "hint",
                "hint contains a control character",
            ));
        }
        Ok(())
    }

    /// Whether the two entries are the same registration in SPIRE's sense: same SPIFFE ID,
    /// parent ID and selector set. Such a pair may not coexist.
    pub fn is_similar(&self, other: &Self) -> bool {
        self.spiffe_id == other.spiffe_id
            && self.parent_id == other.parent_id
            && self.selectors == other.selectors
    }

    /// Parses an entry from the loose form that APIs and the CLI receive, naming the first
    /// field that is wrong. An empty `id` gets a random one.
    pub fn from_raw(raw: RawEntry<'_>) -> Result<Self, EntryError> {
        let id = if raw.id.is_empty() {
            EntryId::random()
        } else {
            EntryId::new(raw.id)?
        };
        let spiffe_id = raw
            .spiffe_id
            .parse()
            .map_err(|e| EntryError::field("spiffe_id", e))?;
        let parent_id = raw
            .parent_id
            .parse()
            .map_err(|e| EntryError::field("parent_id", e))?;
        let selectors = raw
            .selectors
            .iter()
            .map(|s| s.parse().map_err(|e| EntryError::field("selectors", e)))
            .collect::<Result<Vec<Selector>, _>>()?;
        let federates_with = raw
            .federates_with
            .iter()
            .map(|td| {
                td.parse()
                    .map_err(|e| EntryError::field("federates_with", e))
            })
            .collect::<Result<Vec<TrustDomain>, _>>()?;
        let x509_svid_ttl = ttl("x509_svid_ttl", raw.x509_svid_ttl)?;
        let jwt_svid_ttl = ttl("jwt_svid_ttl", raw.jwt_svid_ttl)?;
        let expires_at = match raw.expires_at {
            0 => None,
            t if t < 0 => return Err(EntryError::field("expires_at", "must not be negative")),
            t => Some(t),
        };
        let mut entry = Self {
            id,
            spiffe_id,
            parent_id,
            selectors,
            x509_svid_ttl,
            jwt_svid_ttl,
            federates_with,
            admin: raw.admin,
            downstream: raw.downstream,
            dns_names: raw.dns_names.iter().map(|s| (*s).to_owned()).collect(),
            hint: raw.hint.to_owned(),
            store_svid: raw.store_svid,
            expires_at,
            revision_number: 0,
            created_at: 0,
        };
        entry.canonicalize();
        entry.validate()?;
        Ok(entry)
    }
}

/// An entry as strings and signed integers, the shape it has on SPIRE's wire and CLI.
#[derive(Debug, Clone, Default)]
pub struct RawEntry<'a> {
    /// Entry ID; empty to have one assigned.
    pub id: &'a str,
    /// SPIFFE ID string.
    pub spiffe_id: &'a str,
    /// Parent SPIFFE ID string.
    pub parent_id: &'a str,
    /// `type:value` strings.
    pub selectors: Vec<&'a str>,
    /// Seconds; negative is refused.
    pub x509_svid_ttl: i32,
    /// Seconds; negative is refused.
    pub jwt_svid_ttl: i32,
    /// Trust domain names or `spiffe://` IDs.
    pub federates_with: Vec<&'a str>,
    /// See [`RegistrationEntry::admin`].
    pub admin: bool,
    /// See [`RegistrationEntry::downstream`].
    pub downstream: bool,
    /// DNS names.
    pub dns_names: Vec<&'a str>,
    /// See [`RegistrationEntry::hint`].
    pub hint: &'a str,
    /// See [`RegistrationEntry::store_svid`].
    pub store_svid: bool,
    /// Unix seconds; 0 for never.
    pub expires_at: i64,
}

fn ttl(field: &'static str, value: i32) -> Result<u32, EntryError> {
    u32::try_from(value).map_err(|_| EntryError::field(field, format!("{value} is negative")))
}

/// A DNS SAN as X.509 allows it: LDH labels, an optional leading `*.` wildcard label.
fn validate_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("DNS name is empty".into());
    }
    if name.len() > MAX_DNS_NAME_LEN {
        return Err(format!(
            "{name:?} is longer than {MAX_DNS_NAME_LEN} characters"
        ));
    }
    let rest = name.strip_prefix("*.").unwrap_or(name);
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_DNS_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{name:?} is not a valid DNS name (label {label:?})"
            ));
        }
    }
    Ok(())
}
