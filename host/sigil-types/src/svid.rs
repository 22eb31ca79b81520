//! SVID records: what a workload receives.

use std::fmt;

use zeroize::Zeroizing;

use crate::{SpiffeId, UnixTime};

/// A PKCS#8 DER private key. Zeroed on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyDer(Zeroizing<Vec<u8>>);

impl PrivateKeyDer {
    /// Wraps PKCS#8 DER bytes.
    pub fn new(pkcs8_der: Vec<u8>) -> Self {
        Self(Zeroizing::new(pkcs8_der))
    }

    /// The PKCS#8 DER bytes. Callers must not log them.
    pub fn secret_pkcs8_der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyDer(<redacted>)")
    }
}

/// An X509-SVID with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Svid {
    /// The SPIFFE ID in the leaf's URI SAN.
    pub spiffe_id: SpiffeId,
    /// Leaf first, then any intermediates, each DER.
    pub cert_chain: Vec<Vec<u8>>,
    /// The leaf's private key.
    pub private_key: PrivateKeyDer,
    /// The leaf's notAfter.
    pub expires_at: UnixTime,
    /// The entry's hint.
    pub hint: String,
}

/// A JWT-SVID.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSvid {
    /// The `sub` claim.
    pub spiffe_id: SpiffeId,
    /// The compact JWS. A bearer credential: `Debug` never shows it.
    pub token: String,
    /// The `aud` claim.
    pub audience: Vec<String>,
    /// The `exp` claim.
    pub expires_at: UnixTime,
    /// The `iat` claim.
    pub issued_at: UnixTime,
    /// The entry's hint.
    pub hint: String,
}

impl fmt::Debug for JwtSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("token", &"<redacted>")
            .field("audience", &self.audience)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}
