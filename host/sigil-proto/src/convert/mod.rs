//! Conversions between the generated wire DTOs and `sigil-types` domain values.
//!
//! Wire → domain is `TryFrom<&Dto>`: it parses every field into a domain type (parse, don't
//! validate) and fails with a [`ConvertError`] naming the first bad field, as SPIRE's API
//! spells it. Domain → wire is `From<&Domain>` and cannot fail.
//!
//! | wire (`spire.api.types`) | domain (`sigil_types`) |
//! | --- | --- |
//! | `SPIFFEID` | `SpiffeId` |
//! | `Selector` | `Selector` |
//! | `Entry` | `RegistrationEntry` (through `RawEntry`) |
//! | `Agent` | `AttestedAgent` |
//! | `JoinToken` | `JoinToken` |
//! | `Bundle`, `X509Certificate`, `JWTKey` | `Bundle`, `X509Authority`, `JwtAuthority` |
//! | `FederationRelationship` | `FederationRelationship` |
//! | `X509SVID`, `JWTSVID` (domain → wire only) | `X509Svid`, `JwtSvid` |

mod agent;
mod bundle;
mod entry;
mod svid;

pub use entry::additional_attributes_unsupported;

use sigil_types::{SpiffeId, TrustDomain};

use crate::spire::api::types as wire;

/// A wire message that does not convert into a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A field is missing or malformed. An API answers this with InvalidArgument.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's path as SPIRE's API spells it: `spiffe_id`, `selectors`,
        /// `x509_authorities`, `https_spiffe.endpoint_spiffe_id`…
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConvertError {
    pub(crate) fn field(field: impl Into<String>, reason: impl ToString) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// The field this error is about.
    pub fn field_name(&self) -> &str {
        match self {
            Self::InvalidField { field, .. } => field,
        }
    }

    /// The same error with `prefix.` in front of the field, for a message nested in another.
    fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidField { field, reason } => Self::InvalidField {
                field: format!("{prefix}.{field}"),
                reason,
            },
        }
    }
}

/// Every malformed request is the client's fault: InvalidArgument, with the field named.
impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

// === impl SPIFFEID ===

impl TryFrom<&wire::Spiffeid> for SpiffeId {
    type Error = ConvertError;

    /// `{trust_domain: "example.org", path: "/web"}` → `spiffe://example.org/web`. The path
    /// must be empty or start with `/`. Like SPIRE (go-spiffe's `TrustDomainFromString`), the
    /// trust domain may also be written `spiffe://example.org`.
    fn try_from(id: &wire::Spiffeid) -> Result<Self, Self::Error> {
        let trust_domain: TrustDomain = id
            .trust_domain
            .parse()
            .map_err(|e| ConvertError::field("trust_domain", e))?;
        SpiffeId::new(&trust_domain, &id.path).map_err(|e| ConvertError::field("path", e))
    }
}

impl From<&SpiffeId> for wire::Spiffeid {
    fn from(id: &SpiffeId) -> Self {
        Self {
            trust_domain: id.trust_domain_name().to_owned(),
            path: id.path().to_owned(),
        }
    }
}

/// Parses a required SPIFFEID field; errors name `field` (and the part that is wrong).
pub(crate) fn required_spiffe_id(
    field: &str,
    id: Option<&wire::Spiffeid>,
) -> Result<SpiffeId, ConvertError> {
    let id = id.ok_or_else(|| ConvertError::field(field, "is required"))?;
    SpiffeId::try_from(id).map_err(|e| e.within(field))
}

#[cfg(test)]
mod tests;
