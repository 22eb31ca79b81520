//! JWT-SVIDs: JWS compact tokens signed with ES256, ES384 or RS256, written directly on top of
//! aws-lc-rs, and their validation against a trust bundle.

mod validate;

use std::fmt;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sigil_types::{JwtAuthority, JwtSvid, SpiffeId, TrustDomain, UnixTime};

pub use validate::{ValidatedJwtSvid, validate_jwt_svid};

use crate::{Key, KeyType};

/// SPIRE's default JWT-SVID TTL: five minutes.
pub const DEFAULT_JWT_SVID_TTL: Duration = Duration::from_secs(300);

/// Length of the random key IDs (`kid`) sigil gives JWT signing keys, as SPIRE does.
const KID_LEN: usize = 32;

/// Why a JWT-SVID could not be minted, or a token is not a valid JWT-SVID.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// A JWT-SVID must name at least one audience.
    #[error("a JWT-SVID needs at least one audience")]
    EmptyAudience,
    /// The TTL is zero or overflows a timestamp.
    #[error("invalid JWT-SVID TTL")]
    InvalidTtl,
    /// The signing key has expired; nothing more can be signed with it.
    #[error("JWT signing key expired at {expires_at} (now {now})")]
    SignerExpired {
        /// The key's expiry.
        expires_at: UnixTime,
        /// The time of the request.
        now: UnixTime,
    },
    /// The crypto library failed to sign, or to load the signing key.
    #[error("JWT signing failed: {0}")]
    SigningFailed(&'static str),
    /// The token is not three base64url segments holding a JSON header and claims set.
    #[error("JWT is malformed: {0}")]
    Malformed(String),
    /// The header's `alg` is `none`, an HMAC algorithm, or one sigil does not know.
    #[error("JWT algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    /// The header's `typ` is present and neither `JWT` nor `JOSE`.
    #[error("JWT type {0:?} is not allowed")]
    InvalidType(String),
    /// The header carries `crit`; sigil understands no critical extensions.
    #[error("JWT header has critical extensions")]
    CriticalHeader,
    /// The header has no `kid`.
    #[error("JWT header has no key ID")]
    MissingKeyId,
    /// No JWT authority of the bundle has the token's `kid`.
    #[error("no JWT authority with key ID {0:?} in the bundle")]
    UnknownKeyId(String),
    /// The bundle's key for the `kid` is not usable.
    #[error("JWT authority {kid:?} has an unusable key: {reason}")]
    InvalidAuthorityKey {
        /// The key ID.
        kid: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header's `alg` does not fit the authority's key type.
    #[error("JWT algorithm {alg} does not match the {key_type} key of the authority")]
    AlgorithmMismatch {
        /// The token's algorithm.
        alg: String,
        /// The authority's key type.
        key_type: &'static str,
    },
    /// The signature does not verify.
    #[error("JWT signature is invalid")]
    SignatureInvalid,
    /// A required claim (`sub`, `aud`, `exp`) is absent.
    #[error("JWT claim {0:?} is missing")]
    MissingClaim(&'static str),
    /// `exp` is not in the future.
    #[error("JWT expired at {expires_at} (now {now})")]
    Expired {
        /// The `exp` claim.
        expires_at: UnixTime,
        /// The validation time.
        now: UnixTime,
    },
    /// `nbf` is in the future.
    #[error("JWT is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The `nbf` claim.
        not_before: UnixTime,
        /// The validation time.
        now: UnixTime,
    },
    /// The expected audience is not among the token's.
    #[error("JWT audience does not include {expected:?}")]
    AudienceMismatch {
        /// The audience the validator expected.
        expected: String,
    },
    /// `sub` is not a SPIFFE ID.
    #[error("JWT subject is not a valid SPIFFE ID: {0}")]
    InvalidSubject(String),
    /// `sub` is a SPIFFE ID of another trust domain than the bundle's.
    #[error("JWT subject {spiffe_id} is not in trust domain {trust_domain}")]
    SubjectNotInTrustDomain {
        /// The subject.
        spiffe_id: SpiffeId,
        /// The bundle's trust domain.
        trust_domain: TrustDomain,
    },
}

impl JwtError {
    /// Whether the request or the presented token is at fault (no audience, a bad TTL, a
    /// token that does not validate) rather than the signer or the bundle. A server answers
    /// these InvalidArgument with this text; the rest (an expired or failing signing key, an
    /// unusable bundle key) are its own failures, logged and answered Internal without it.
    pub fn is_peer_fault(&self) -> bool {
        // Exhaustive on purpose: a new variant must be classified here.
        match self {
            Self::EmptyAudience
            | Self::InvalidTtl
            | Self::Malformed(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::InvalidType(_)
            | Self::CriticalHeader
            | Self::MissingKeyId
            | Self::UnknownKeyId(_)
            | Self::AlgorithmMismatch { .. }
            | Self::SignatureInvalid
            | Self::MissingClaim(_)
            | Self::Expired { .. }
            | Self::NotYetValid { .. }
            | Self::AudienceMismatch { .. }
            | Self::InvalidSubject(_)
            | Self::SubjectNotInTrustDomain { .. } => true,
            Self::SignerExpired { .. }
            | Self::SigningFailed(_)
            | Self::InvalidAuthorityKey { .. } => false,
        }
    }
}

/// A JWT signing key with its `kid` and expiry.
pub struct JwtSigner {
    key: Key,
    kid: String,
    expires_at: UnixTime,
    signer: Signer,
    rng: SystemRandom,
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("key", &self.key)
            .field("kid", &self.kid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    aud: &'a [String],
    exp: UnixTime,
    iat: UnixTime,
}

impl JwtSigner {
    /// A signer for `key`, published in bundles as `kid`, usable until `expires_at`.
    pub fn new(key: Key, kid: impl Into<String>, expires_at: UnixTime) -> Result<Self, JwtError> {
        let pkcs8 = key.secret_pkcs8_der();
        let failed = |_| JwtError::SigningFailed("the key cannot be loaded for JWT signing");
        let signer = match key.key_type() {
            KeyType::EcP256 => Signer::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(failed)?,
            ),
            KeyType::EcP384 => Signer::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8)
                    .map_err(failed)?,
            ),
            KeyType::Rsa2048 | KeyType::Rsa4096 => Signer::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| JwtError::SigningFailed("the RSA key cannot be loaded"))?,
            ),
        };
        Ok(Self {
            key,
            kid: kid.into(),
            expires_at,
            signer,
            rng: SystemRandom::new(),
        })
    }

    /// The `kid` tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key manager's ID of the signing key.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The JWS algorithm: `ES256`, `ES384` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        self.key.key_type().jws_algorithm()
    }

    /// When the key stops being trusted; tokens never outlive it.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The bundle entry for this key.
    pub fn authority(&self) -> JwtAuthority {
        JwtAuthority {
            key_id: self.kid.clone(),
            public_key_der: self.key.public_key_der().to_vec(),
            expires_at: self.expires_at,
            tainted: false,
        }
    }

    /// Mints a JWT-SVID for `spiffe_id` and `audience`, expiring after `ttl` or at the key's
    /// expiry, whichever is first.
    pub fn mint_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: UnixTime,
    ) -> Result<JwtSvid, JwtError> {
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(JwtError::EmptyAudience);
        }
        if now >= self.expires_at {
            return Err(JwtError::SignerExpired {
                expires_at: self.expires_at,
                now,
            });
        }
        let ttl = i64::try_from(ttl.as_secs())
            .ok()
            .filter(|&s| s > 0)
            .ok_or(JwtError::InvalidTtl)?;
        let exp = now.saturating_add(ttl).min(self.expires_at);
        let header = Header {
            alg: self.algorithm(),
            kid: &self.kid,
            typ: "JWT",
        };
        let claims = Claims {
            sub: spiffe_id.as_str(),
            aud: audience,
            exp,
            iat: now,
        };
        let mut token = encode_json(&header)?;
        token.push('.');
        token.push_str(&encode_json(&claims)?);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(JwtSvid {
            spiffe_id: spiffe_id.clone(),
            token,
            audience: audience.to_vec(),
            expires_at: exp,
            issued_at: now,
            hint: String::new(),
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        match &self.signer {
            Signer::Ecdsa(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JwtError::SigningFailed("ECDSA signing failed")),
            Signer::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| JwtError::SigningFailed("RSA signing failed"))?;
                Ok(signature)
            }
        }
    }
}

/// A fresh random key ID: 32 characters of `[A-Za-z0-9]`, as SPIRE generates.
pub fn generate_kid() -> Result<String, JwtError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut kid = String::with_capacity(KID_LEN);
    let mut bytes = [0u8; 64];
    while kid.len() < KID_LEN {
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| JwtError::SigningFailed("system random generator failed"))?;
        // 248 = 4 * 62: rejecting larger bytes keeps the choice uniform.
        for &b in bytes.iter().filter(|&&b| b < 248) {
            if kid.len() == KID_LEN {
                break;
            }
            kid.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(kid)
}

fn encode_json(value: &impl serde::Serialize) -> Result<String, JwtError> {
    let json =
        serde_json::to_vec(value).map_err(|_| JwtError::SigningFailed("JSON encoding failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

#[cfg(test)]
mod tests;
