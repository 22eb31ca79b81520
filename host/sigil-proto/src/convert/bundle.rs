//! `Bundle` (with `X509Certificate` and `JWTKey`) and `FederationRelationship`.

use sigil_types::{
    Bundle, BundleEndpointProfile, BundleError, FederationRelationship, JwtAuthority, TrustDomain,
    X509Authority,
};

use super::ConvertError;
use crate::spire::api::types as wire;
use crate::spire::api::types::federation_relationship::BundleEndpointProfile as WireProfile;

impl TryFrom<&wire::Bundle> for Bundle {
    type Error = ConvertError;

    /// Every X.509 authority must be a DER certificate and every JWT authority must have a
    /// key ID and a usable public key ([`Bundle::validate`]). WIT authorities have no domain
    /// counterpart (sigil issues no WIT-SVIDs) and are dropped, as SPIRE's server drops them
    /// from bundles it is given.
    fn try_from(b: &wire::Bundle) -> Result<Self, Self::Error> {
        let trust_domain = trust_domain("trust_domain", &b.trust_domain)?;
        let refresh_hint = u64::try_from(b.refresh_hint)
            .map_err(|_| ConvertError::field("refresh_hint", "must not be negative"))?;
        let bundle = Self {
            trust_domain,
            x509_authorities: b.x509_authorities.iter().map(Into::into).collect(),
            jwt_authorities: b.jwt_authorities.iter().map(Into::into).collect(),
            refresh_hint,
            sequence_number: b.sequence_number,
        };
        bundle.validate().map_err(|e| match e {
            BundleError::Certificate { index, reason } => {
                ConvertError::field(format!("x509_authorities[{index}].asn1"), reason)
            }
            e @ BundleError::JwtAuthority { .. } => ConvertError::field("jwt_authorities", e),
            e => ConvertError::field("bundle", e),
        })?;
        Ok(bundle)
    }
}

impl From<&Bundle> for wire::Bundle {
    fn from(b: &Bundle) -> Self {
        Self {
            trust_domain: b.trust_domain.name().to_owned(),
            x509_authorities: b.x509_authorities.iter().map(Into::into).collect(),
            jwt_authorities: b.jwt_authorities.iter().map(Into::into).collect(),
            refresh_hint: i64::try_from(b.refresh_hint).unwrap_or(i64::MAX),
            sequence_number: b.sequence_number,
            wit_authorities: Vec::new(),
        }
    }
}

/// Only the shape is converted here; [`Bundle`]'s conversion checks the certificate.
impl From<&wire::X509Certificate> for X509Authority {
    fn from(c: &wire::X509Certificate) -> Self {
        Self {
            der: c.asn1.clone(),
            tainted: c.tainted,
        }
    }
}

impl From<&X509Authority> for wire::X509Certificate {
    fn from(a: &X509Authority) -> Self {
        Self {
            asn1: a.der.clone(),
            tainted: a.tainted,
        }
    }
}

/// Only the shape is converted here; [`Bundle`]'s conversion checks the key.
impl From<&wire::JwtKey> for JwtAuthority {
    fn from(k: &wire::JwtKey) -> Self {
        Self {
            key_id: k.key_id.clone(),
            public_key_der: k.public_key.clone(),
            expires_at: k.expires_at,
            tainted: k.tainted,
        }
    }
}

impl From<&JwtAuthority> for wire::JwtKey {
    fn from(a: &JwtAuthority) -> Self {
        Self {
            public_key: a.public_key_der.clone(),
            key_id: a.key_id.clone(),
            expires_at: a.expires_at,
            tainted: a.tainted,
        }
    }
}

impl TryFrom<&wire::FederationRelationship> for FederationRelationship {
    type Error = ConvertError;

    /// The URL must be `https://` with a host; the profile is required; a bundle, when
    /// given, must belong to the relationship's trust domain.
    fn try_from(r: &wire::FederationRelationship) -> Result<Self, Self::Error> {
        let trust_domain = trust_domain("trust_domain", &r.trust_domain)?;
        let url = &r.bundle_endpoint_url;
        let host = url
            .strip_prefix("https://")
            .ok_or_else(|| ConvertError::field("bundle_endpoint_url", "scheme must be https"))?;
        if host.is_empty() || host.starts_with('/') {
            return Err(ConvertError::field(
                "bundle_endpoint_url",
                "host is missing",
            ));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConvertError::field(
                "bundle_endpoint_url",
                "contains whitespace or a control character",
            ));
        }
        let profile = match &r.bundle_endpoint_profile {
            None => {
                return Err(ConvertError::field(
                    "bundle_endpoint_profile",
                    "is required (https_web or https_spiffe)",
                ));
            }
            Some(WireProfile::HttpsWeb(_)) => BundleEndpointProfile::HttpsWeb,
            Some(WireProfile::HttpsSpiffe(p)) => BundleEndpointProfile::HttpsSpiffe {
                endpoint_spiffe_id: p
                    .endpoint_spiffe_id
                    .parse()
                    .map_err(|e| ConvertError::field("https_spiffe.endpoint_spiffe_id", e))?,
            },
        };
        let trust_domain_bundle = match &r.trust_domain_bundle {
            None => None,
            Some(b) => {
                let bundle = Bundle::try_from(b).map_err(|e| e.within("trust_domain_bundle"))?;
                if bundle.trust_domain != trust_domain {
                    return Err(ConvertError::field(
                        "trust_domain_bundle.trust_domain",
                        format!(
                            "bundle of {} does not match relationship trust domain {trust_domain}",
                            bundle.trust_domain
                        ),
                    ));
                }
                Some(bundle)
            }
        };
        Ok(Self {
            trust_domain,
            bundle_endpoint_url: url.clone(),
            profile,
            trust_domain_bundle,
        })
    }
}

impl From<&FederationRelationship> for wire::FederationRelationship {
    fn from(r: &FederationRelationship) -> Self {
        let profile = match &r.profile {
            BundleEndpointProfile::HttpsWeb => WireProfile::HttpsWeb(wire::HttpsWebProfile {}),
            BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
                WireProfile::HttpsSpiffe(wire::HttpsspiffeProfile {
                    endpoint_spiffe_id: endpoint_spiffe_id.as_str().to_owned(),
                })
            }
        };
        Self {
            trust_domain: r.trust_domain.name().to_owned(),
            bundle_endpoint_url: r.bundle_endpoint_url.clone(),
            trust_domain_bundle: r.trust_domain_bundle.as_ref().map(Into::into),
            bundle_endpoint_profile: Some(profile),
        }
    }
}

/// A trust domain name, `example.org` or (as SPIRE also accepts) `spiffe://example.org`.
fn trust_domain(field: &str, name: &str) -> Result<TrustDomain, ConvertError> {
    name.parse().map_err(|e| ConvertError::field(field, e))
}
