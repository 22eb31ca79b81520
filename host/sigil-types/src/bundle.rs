//! Trust bundles: the X.509 and JWT authorities of one trust domain.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{TrustDomain, UnixTime};

/// Why a bundle, or a document claiming to be one, is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The document is not valid JSON or not a JWK set.
    #[error("bundle is not a valid JWK set: {0}")]
    Json(String),
    /// A key of the set is malformed; `index` is its position in `keys`.
    #[error("bundle key {index}: {reason}")]
    Key {
        /// Position in the `keys` array.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An X.509 authority is not a DER certificate.
    #[error("X.509 authority {index} is not a valid certificate: {reason}")]
    Certificate {
        /// Position in `x509_authorities` (or in the PEM input).
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A PEM document holds something other than certificates, or nothing.
    #[error("PEM bundle: {0}")]
    Pem(String),
    /// A JWT authority has no key ID or an unusable key.
    #[error("JWT authority {key_id:?}: {reason}")]
    JwtAuthority {
        /// The authority's key ID.
        key_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Pruning would leave the bundle without any X.509 authority.
    #[error("pruning would remove every X.509 authority of {0}")]
    WouldPruneAll(TrustDomain),
}

/// A CA certificate trusted for X509-SVIDs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct X509Authority {
    /// The certificate, DER (base64 in serde formats).
    #[serde(with = "base64_bytes")]
    pub der: Vec<u8>,
    /// The authority is being retired; SVIDs it signed should be re-minted.
    pub tainted: bool,
}

/// A public key trusted for JWT-SVIDs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JwtAuthority {
    /// The `kid` JWT-SVIDs signed by this key carry.
    pub key_id: String,
    /// SubjectPublicKeyInfo, DER (base64 in serde formats).
    #[serde(with = "base64_bytes")]
    pub public_key_der: Vec<u8>,
    /// When the key stops being trusted; 0 when unknown.
    pub expires_at: UnixTime,
    /// The authority is being retired.
    pub tainted: bool,
}

/// A trust domain's bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    /// Whose bundle this is.
    pub trust_domain: TrustDomain,
    /// CA certificates for X509-SVIDs.
    pub x509_authorities: Vec<X509Authority>,
    /// Keys for JWT-SVIDs.
    pub jwt_authorities: Vec<JwtAuthority>,
    /// How often, in seconds, consumers should poll for a new bundle; 0 when unset.
    pub refresh_hint: u64,
    /// Incremented on every change.
    pub sequence_number: u64,
}

impl Bundle {
    /// The X.509 authorities' DER, concatenated: the Workload API's and the Delegated
    /// Identity API's X.509 bundle encoding.
    pub fn x509_authorities_der(&self) -> Vec<u8> {
        self.x509_authorities
            .iter()
            .flat_map(|a| a.der.iter().copied())
            .collect()
    }

    /// An empty bundle.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: 0,
            sequence_number: 0,
        }
    }

    /// Checks that every X.509 authority parses as a certificate and every JWT authority has a
    /// key ID and a parseable public key.
    pub fn validate(&self) -> Result<(), BundleError> {
        for (index, authority) in self.x509_authorities.iter().enumerate() {
            check_x509_authority(&authority.der)
                .map_err(|reason| BundleError::Certificate { index, reason })?;
        }
        for authority in &self.jwt_authorities {
            if authority.key_id.is_empty() {
                return Err(BundleError::JwtAuthority {
                    key_id: String::new(),
                    reason: "key ID is empty".into(),
                });
            }
            crate::jwks::spki_to_jwk(&authority.public_key_der).map_err(|reason| {
                BundleError::JwtAuthority {
                    key_id: authority.key_id.clone(),
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// Adds the authorities of `other` that this bundle lacks (X.509 by certificate, JWT by
    /// key ID). Bumps the sequence number and returns `true` when anything was added.
    pub fn append(&mut self, other: &Bundle) -> bool {
        let mut changed = false;
        for authority in &other.x509_authorities {
            if !self.x509_authorities.iter().any(|a| a.der == authority.der) {
                self.x509_authorities.push(authority.clone());
                changed = true;
            }
        }
        for authority in &other.jwt_authorities {
            if !self
                .jwt_authorities
                .iter()
                .any(|a| a.key_id == authority.key_id)
            {
                self.jwt_authorities.push(authority.clone());
                changed = true;
            }
        }
        if changed {
            self.sequence_number += 1;
        }
        changed
    }

    /// Removes X.509 authorities whose certificate expired before `expires_before` and JWT
    /// authorities with a known expiry before it. Refuses to remove every X.509 authority.
    /// Bumps the sequence number and returns `true` when anything was removed.
    pub fn prune(&mut self, expires_before: UnixTime) -> Result<bool, BundleError> {
        let mut keep = Vec::with_capacity(self.x509_authorities.len());
        for (index, authority) in self.x509_authorities.iter().enumerate() {
            let not_after = cert_not_after(&authority.der)
                .map_err(|reason| BundleError::Certificate { index, reason })?;
            keep.push(not_after >= expires_before);
        }
        if !self.x509_authorities.is_empty() && !keep.contains(&true) {
            return Err(BundleError::WouldPruneAll(self.trust_domain.clone()));
        }
        let before = self.x509_authorities.len() + self.jwt_authorities.len();
        let mut flags = keep.into_iter();
        self.x509_authorities
            .retain(|_| flags.next().unwrap_or(true));
        self.jwt_authorities
            .retain(|a| a.expires_at == 0 || a.expires_at >= expires_before);
        let changed = before != self.x509_authorities.len() + self.jwt_authorities.len();
        if changed {
            self.sequence_number += 1;
        }
        Ok(changed)
    }

    /// The X.509 authorities as concatenated PEM `CERTIFICATE` blocks.
    pub fn x509_authorities_pem(&self) -> String {
        let mut out = String::new();
        for authority in &self.x509_authorities {
            out.push_str(&crate::jwks::pem_encode("CERTIFICATE", &authority.der));
        }
        out
    }

    /// A bundle holding the certificates of a PEM document (SPIRE's `-format pem`).
    pub fn from_x509_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, BundleError> {
        let mut bundle = Self::new(trust_domain);
        for (index, block) in x509_parser::pem::Pem::iter_from_buffer(pem).enumerate() {
            let block = block.map_err(|e| BundleError::Pem(e.to_string()))?;
            if block.label != "CERTIFICATE" {
                return Err(BundleError::Pem(format!(
                    "block {index} is {:?}, expected CERTIFICATE",
                    block.label
                )));
            }
            check_x509_authority(&block.contents)
                .map_err(|reason| BundleError::Certificate { index, reason })?;
            bundle.x509_authorities.push(X509Authority {
                der: block.contents,
                tainted: false,
            });
        }
        if bundle.x509_authorities.is_empty() {
            return Err(BundleError::Pem("no CERTIFICATE block found".into()));
        }
        Ok(bundle)
    }
}

/// Checks an X.509 authority: one DER certificate and nothing after it, whose public key a
/// SPIFFE bundle document can carry (EC P-256 or P-384, RSA), so that every bundle that
/// validates can also be served as a JWK set.
pub(crate) fn check_x509_authority(der: &[u8]) -> Result<(), String> {
    cert_not_after(der)?;
    crate::jwks::cert_key_params(der).map(drop)
}

/// The certificate's notAfter, or why it does not parse.
pub(crate) fn cert_not_after(der: &[u8]) -> Result<UnixTime, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    Ok(cert.validity().not_after.timestamp())
}

/// Serde for DER fields as standard base64 strings: a stored bundle document stays about a
/// quarter of the size a JSON array of numbers would take.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
