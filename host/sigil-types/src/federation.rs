//! Federation relationships with foreign trust domains.

use crate::{Bundle, SpiffeId, TrustDomain};

/// How a foreign trust domain's bundle endpoint is authenticated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "profile", rename_all = "snake_case")]
pub enum BundleEndpointProfile {
    /// Web PKI TLS.
    HttpsWeb,
    /// SPIFFE-authenticated TLS: the endpoint presents an SVID with this ID.
    HttpsSpiffe {
        /// The SPIFFE ID the endpoint's SVID must carry.
        endpoint_spiffe_id: SpiffeId,
    },
}

/// A federation relationship: where to fetch a foreign trust domain's bundle and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FederationRelationship {
    /// The foreign trust domain.
    pub trust_domain: TrustDomain,
    /// Its bundle endpoint URL (https).
    pub bundle_endpoint_url: String,
    /// How that endpoint is authenticated.
    pub profile: BundleEndpointProfile,
    /// The bundle last fetched or set, if any.
    pub trust_domain_bundle: Option<Bundle>,
}
