//! JWT-SVID validation against a trust bundle, per the SPIFFE JWT-SVID specification.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sigil_types::{Bundle, SpiffeId, UnixTime};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::JwtError;

/// Tokens longer than this are refused before decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a valid JWT-SVID asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidatedJwtSvid {
    /// The `sub` claim.
    pub spiffe_id: SpiffeId,
    /// The `aud` claim.
    pub audience: Vec<String>,
    /// The `exp` claim.
    pub expires_at: UnixTime,
    /// The `iat` claim, when present.
    pub issued_at: Option<UnixTime>,
    /// The `kid` of the authority that signed it.
    pub key_id: String,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

/// The public key kinds a JWT authority can have, and the algorithms each allows.
#[derive(Clone, Copy)]
enum AuthorityKey {
    EcP256,
    EcP384,
    Rsa,
}

impl AuthorityKey {
    fn name(self) -> &'static str {
        match self {
            AuthorityKey::EcP256 => "EC P-256",
            AuthorityKey::EcP384 => "EC P-384",
            AuthorityKey::Rsa => "RSA",
        }
    }

    fn verification_algorithm(
        self,
        alg: &str,
    ) -> Result<&'static dyn VerificationAlgorithm, JwtError> {
        let mismatch = || JwtError::AlgorithmMismatch {
            alg: alg.to_owned(),
            key_type: self.name(),
        };
        match (self, alg) {
            (AuthorityKey::EcP256, "ES256") => Ok(&ECDSA_P256_SHA256_FIXED),
            (AuthorityKey::EcP384, "ES384") => Ok(&ECDSA_P384_SHA384_FIXED),
            (AuthorityKey::Rsa, "RS256") => Ok(&RSA_PKCS1_2048_8192_SHA256),
            (AuthorityKey::Rsa, "RS384") => Ok(&RSA_PKCS1_2048_8192_SHA384),
            (AuthorityKey::Rsa, "RS512") => Ok(&RSA_PKCS1_2048_8192_SHA512),
            (AuthorityKey::Rsa, "PS256") => Ok(&RSA_PSS_2048_8192_SHA256),
            (AuthorityKey::Rsa, "PS384") => Ok(&RSA_PSS_2048_8192_SHA384),
            (AuthorityKey::Rsa, "PS512") => Ok(&RSA_PSS_2048_8192_SHA512),
            _ => Err(mismatch()),
        }
    }
}

/// The algorithms a JWT-SVID may be signed with (SPIFFE JWT-SVID §3, minus ES512).
const KNOWN_ALGORITHMS: [&str; 8] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Validates `token` at `now` against the JWT authorities of `bundle`: the header must name a
/// `kid` of the bundle and an algorithm fitting its key, the signature must verify, `exp` must
/// be in the future, `expected_audience` must be among `aud`, and `sub` must be a SPIFFE ID of
/// the bundle's trust domain.
pub fn validate_jwt_svid(
    token: &str,
    bundle: &Bundle,
    expected_audience: &str,
    now: UnixTime,
) -> Result<ValidatedJwtSvid, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed(format!(
            "token is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "a JWS compact token has exactly three segments".to_owned(),
        ));
    };
    let header: Header = decode_json(header_b64, "header")?;
    if header.alg == "none" || header.alg.starts_with("HS") {
        return Err(JwtError::UnsupportedAlgorithm(header.alg));
    }
    if !KNOWN_ALGORITHMS.contains(&header.alg.as_str()) {
        return Err(JwtError::UnsupportedAlgorithm(header.alg));
    }
    if let Some(typ) = &header.typ
        && typ != "JWT"
        && typ != "JOSE"
    {
        return Err(JwtError::InvalidType(typ.clone()));
    }
    if header.crit.is_some() {
        return Err(JwtError::CriticalHeader);
    }
    let kid = header.kid.ok_or(JwtError::MissingKeyId)?;
    let authority = bundle
        .jwt_authorities
        .iter()
        .find(|a| a.key_id == kid)
        .ok_or_else(|| JwtError::UnknownKeyId(kid.clone()))?;

    let (key_kind, raw_key) = authority_key(&kid, &authority.public_key_der)?;
    let algorithm = key_kind.verification_algorithm(&header.alg)?;
    let signature = decode_segment(signature_b64, "signature")?;
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    UnparsedPublicKey::new(algorithm, &raw_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwtError::SignatureInvalid)?;

    let claims: Claims = decode_json(claims_b64, "claims")?;
    let expires_at = claims.exp.ok_or(JwtError::MissingClaim("exp"))?;
    if expires_at <= now {
        return Err(JwtError::Expired { expires_at, now });
    }
    if let Some(not_before) = claims.nbf
        && not_before > now
    {
        return Err(JwtError::NotYetValid { not_before, now });
    }
    let audience = match claims.aud.ok_or(JwtError::MissingClaim("aud"))? {
        Audience::One(a) => vec![a],
        Audience::Many(list) => list,
    };
    if !audience.iter().any(|a| a == expected_audience) {
        return Err(JwtError::AudienceMismatch {
            expected: expected_audience.to_owned(),
        });
    }
    let subject = claims.sub.ok_or(JwtError::MissingClaim("sub"))?;
    let spiffe_id: SpiffeId = subject
        .parse()
        .map_err(|e: sigil_types::SpiffeIdError| JwtError::InvalidSubject(e.to_string()))?;
    if !spiffe_id.is_member_of(&bundle.trust_domain) {
        return Err(JwtError::SubjectNotInTrustDomain {
            spiffe_id,
            trust_domain: bundle.trust_domain.clone(),
        });
    }
    Ok(ValidatedJwtSvid {
        spiffe_id,
        audience,
        expires_at,
        issued_at: claims.iat,
        key_id: kid,
    })
}

fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| JwtError::Malformed(format!("{what} is not unpadded base64url: {e}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str, what: &str) -> Result<T, JwtError> {
    let bytes = decode_segment(segment, what)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| JwtError::Malformed(format!("{what} is not a valid JSON object: {e}")))
}

/// The kind of an authority's SPKI and the key bytes aws-lc verifies with.
fn authority_key(kid: &str, spki_der: &[u8]) -> Result<(AuthorityKey, Vec<u8>), JwtError> {
    let invalid = |reason| JwtError::InvalidAuthorityKey {
        kid: kid.to_owned(),
        reason,
    };
    let (rest, spki) =
        SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| invalid("not SPKI DER"))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the SPKI"));
    }
    let raw = spki.subject_public_key.data.to_vec();
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        return Ok((AuthorityKey::Rsa, raw));
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok((AuthorityKey::EcP256, raw)),
            Some(c) if c == OID_NIST_EC_P384 => Ok((AuthorityKey::EcP384, raw)),
            _ => Err(invalid("EC curve other than P-256 or P-384")),
        };
    }
    Err(invalid("key algorithm other than EC or RSA"))
}
