//! The datastore's one error type.

use std::fmt;

use sigil_types::{BundleError, EntryError, RegistrationEntry, TrustDomain, UnixTime};

/// What a datastore call can fail with. API layers map each variant to one status code; no
/// variant carries SQL text or connection details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object the call names does not exist.
    #[error("{kind} {key:?} not found")]
    NotFound {
        /// What kind of object was looked up.
        kind: ObjectKind,
        /// Its key: entry ID, SPIFFE ID, trust domain name, CA journal name… (never a join
        /// token's secret, which is redacted).
        key: String,
    },
    /// The object, or for entries a similar one, already exists.
    #[error("{kind} {key:?} already exists")]
    AlreadyExists {
        /// What kind of object.
        kind: ObjectKind,
        /// The key of the existing object (for entries: the existing entry's ID).
        key: String,
        /// For entries, always the entry already stored: the one with the same ID, or the one
        /// with the same SPIFFE ID, parent ID and selector set. SPIRE's batch API returns it to
        /// the caller. `None` for other kinds.
        existing_entry: Option<Box<RegistrationEntry>>,
    },
    /// A field of the request is invalid.
    #[error("invalid argument: {field}: {reason}")]
    InvalidArgument {
        /// The field's name, as SPIRE's API spells it (`selectors`, `dns_names`, `page_size`…).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The join token exists but expired; it has been deleted.
    #[error("join token expired at {expired_at}")]
    JoinTokenExpired {
        /// When it expired, in Unix seconds.
        expired_at: UnixTime,
    },
    /// The bundle cannot be deleted in [`DeleteMode::Restrict`](crate::DeleteMode::Restrict)
    /// mode because entries federate with its trust domain.
    #[error("bundle of {trust_domain} is federated with {entries} registration entries")]
    BundleInUse {
        /// The bundle's trust domain.
        trust_domain: TrustDomain,
        /// How many entries federate with it.
        entries: u64,
    },
    /// The database was written by a newer sigil whose schema this build does not know.
    #[error(
        "the database schema is version {found}, newer than version {supported}, the newest this \
         build of sigil knows: run a sigil version at least as new as the one that last opened \
         this database"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build supports.
        supported: i64,
    },
    /// The database failed, refused the connection, or holds data this build cannot read. The
    /// message names the operation and the database's complaint, never the SQL text.
    #[error("datastore backend error: {0}")]
    Backend(String),
}

/// The kinds of object a datastore keeps, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A registration entry.
    Entry,
    /// An attested agent.
    Agent,
    /// A trust bundle.
    Bundle,
    /// A join token.
    JoinToken,
    /// A CA journal.
    CaJournal,
    /// A federation relationship.
    FederationRelationship,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Entry => "registration entry",
            Self::Agent => "attested agent",
            Self::Bundle => "bundle",
            Self::JoinToken => "join token",
            Self::CaJournal => "CA journal",
            Self::FederationRelationship => "federation relationship",
        })
    }
}

impl Error {
    /// A [`Error::NotFound`].
    pub(crate) fn not_found(kind: ObjectKind, key: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            key: key.to_string(),
        }
    }

    /// A [`Error::AlreadyExists`] for something other than an entry.
    pub(crate) fn already_exists(kind: ObjectKind, key: impl fmt::Display) -> Self {
        Self::AlreadyExists {
            kind,
            key: key.to_string(),
            existing_entry: None,
        }
    }

    /// A [`Error::AlreadyExists`] carrying the entry already stored.
    pub(crate) fn entry_exists(existing: RegistrationEntry) -> Self {
        Self::AlreadyExists {
            kind: ObjectKind::Entry,
            key: existing.id.to_string(),
            existing_entry: Some(Box::new(existing)),
        }
    }

    /// A [`Error::InvalidArgument`].
    pub(crate) fn invalid(field: &'static str, reason: impl fmt::Display) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.to_string(),
        }
    }

    /// A [`Error::Backend`] for a stored value this build cannot read.
    pub(crate) fn corrupt(what: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Self::Backend(format!("stored {what} is unreadable: {reason}"))
    }
}

impl From<EntryError> for Error {
    fn from(e: EntryError) -> Self {
        let field = e.field_name();
        let reason = match e {
            EntryError::InvalidField { reason, .. } => reason,
            other => other.to_string(),
        };
        Self::InvalidArgument { field, reason }
    }
}

impl From<BundleError> for Error {
    fn from(e: BundleError) -> Self {
        Self::invalid("bundle", e)
    }
}

/// The datastore's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
