//! The SPIFFE vocabulary shared by every sigil crate.
//!
//! Everything here is plain data plus the parsers that make it: a [`SpiffeId`] or a
//! [`Selector`] can only exist in its valid form, so code above this crate never re-checks
//! them. Architecture invariant: this crate does no I/O (no files, no network, no clock);
//! times are passed in as Unix seconds by the caller, or read through the [`Clock`] trait,
//! whose implementations live in sigil-clock.

mod agent;
mod audience;
mod bundle;
mod clock;
mod entry;
mod federation;
mod jwks;
mod key_type;
mod selector;
mod spiffe_id;
mod svid;
pub mod x509;

pub use agent::{AttestedAgent, JoinToken};
pub use audience::{
    AudienceError, MAX_AUDIENCE_BYTES, MAX_AUDIENCE_TOTAL_BYTES, MAX_AUDIENCES, check_audience,
};
pub use bundle::{Bundle, BundleError, JwtAuthority, X509Authority};
pub use clock::Clock;
pub use entry::{EntryError, EntryId, RawEntry, RegistrationEntry};
pub use federation::{BundleEndpointProfile, FederationRelationship};
pub use key_type::{KeyType, UnknownKeyType};
pub use selector::{Selector, SelectorError};
pub use spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};
pub use svid::{JwtSvid, PrivateKeyDer, X509Svid};

/// Seconds since the Unix epoch. Every timestamp in sigil's records uses this unit, as SPIRE's
/// API and datastore do.
pub type UnixTime = i64;
