//! The SPIFFE bundle format: a JWK set whose keys carry `use` = `x509-svid` (with a one-element
//! `x5c`) or `jwt-svid` (with a `kid`), plus `spiffe_sequence` and `spiffe_refresh_hint`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{Bundle, BundleError, JwtAuthority, TrustDomain, X509Authority};

const USE_X509: &str = "x509-svid";
const USE_JWT: &str = "jwt-svid";

/// DER of `SEQUENCE { id-ecPublicKey, <curve> }` + the BIT STRING header, for each curve we
/// support; the uncompressed point follows.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// DER of `SEQUENCE { rsaEncryption, NULL }`.
const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

#[derive(serde::Serialize, serde::Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_refresh_hint: Option<u64>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Jwk {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    key_use: Option<String>,
    #[serde(flatten)]
    params: KeyParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x5c: Option<Vec<String>>,
}

/// The public-key members of a JWK.
#[derive(serde::Serialize, serde::Deserialize, Default, PartialEq, Eq, Debug)]
pub(crate) struct KeyParams {
    #[serde(default)]
    kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

impl Bundle {
    /// The JWT authorities alone as a JWK set: the Workload API's and the Delegated Identity
    /// API's JWT bundle encoding.
    pub fn to_jwt_jwks(&self) -> Result<String, BundleError> {
        let mut jwt_only = self.clone();
        jwt_only.x509_authorities.clear();
        jwt_only.to_jwks()
    }

    /// The bundle as a SPIFFE bundle document (JWK set). JWT authorities' expiry and the
    /// tainted flags have no place in the format and are not written.
    pub fn to_jwks(&self) -> Result<String, BundleError> {
        let mut keys = Vec::with_capacity(self.x509_authorities.len() + self.jwt_authorities.len());
        for (index, authority) in self.x509_authorities.iter().enumerate() {
            let params = cert_key_params(&authority.der)
                .map_err(|reason| BundleError::Certificate { index, reason })?;
            keys.push(Jwk {
                key_use: Some(USE_X509.into()),
                params,
                kid: None,
                x5c: Some(vec![STANDARD.encode(&authority.der)]),
            });
        }
        for authority in &self.jwt_authorities {
            let params = spki_to_jwk(&authority.public_key_der).map_err(|reason| {
                BundleError::JwtAuthority {
                    key_id: authority.key_id.clone(),
                    reason,
                }
            })?;
            keys.push(Jwk {
                key_use: Some(USE_JWT.into()),
                params,
                kid: Some(authority.key_id.clone()),
                x5c: None,
            });
        }
        let set = JwkSet {
            keys,
            spiffe_sequence: Some(self.sequence_number),
            spiffe_refresh_hint: (self.refresh_hint != 0).then_some(self.refresh_hint),
        };
        serde_json::to_string_pretty(&set).map_err(|e| BundleError::Json(e.to_string()))
    }

    /// Parses a SPIFFE bundle document. Keys whose `use` is neither `x509-svid` nor `jwt-svid`
    /// are ignored, as the SPIFFE bundle format requires.
    pub fn from_jwks(trust_domain: TrustDomain, document: &str) -> Result<Self, BundleError> {
        let set: JwkSet =
            serde_json::from_str(document).map_err(|e| BundleError::Json(e.to_string()))?;
        let mut bundle = Bundle::new(trust_domain);
        bundle.sequence_number = set.spiffe_sequence.unwrap_or(0);
        bundle.refresh_hint = set.spiffe_refresh_hint.unwrap_or(0);
        for (index, key) in set.keys.into_iter().enumerate() {
            let err = |reason: String| BundleError::Key { index, reason };
            match key.key_use.as_deref() {
                Some(USE_X509) => {
                    let der = match key.x5c.as_deref() {
                        Some([one]) => STANDARD
                            .decode(one)
                            .map_err(|e| err(format!("x5c is not base64: {e}")))?,
                        Some(many) => {
                            return Err(err(format!(
                                "expected a single certificate in x5c, got {}",
                                many.len()
                            )));
                        }
                        None => return Err(err("x509-svid key has no x5c".into())),
                    };
                    crate::bundle::check_x509_authority(&der).map_err(&err)?;
                    let cert_params = cert_key_params(&der).map_err(&err)?;
                    if cert_params != key.params {
                        return Err(err(
                            "key parameters do not match the x5c certificate's key".into()
                        ));
                    }
                    bundle.x509_authorities.push(X509Authority {
                        der,
                        tainted: false,
                    });
                }
                Some(USE_JWT) => {
                    let key_id = match key.kid {
                        Some(kid) if !kid.is_empty() => kid,
                        _ => return Err(err("jwt-svid key has no kid".into())),
                    };
                    if bundle.jwt_authorities.iter().any(|a| a.key_id == key_id) {
                        return Err(err(format!("duplicate kid {key_id:?}")));
                    }
                    let public_key_der = jwk_to_spki(&key.params).map_err(&err)?;
                    bundle.jwt_authorities.push(JwtAuthority {
                        key_id,
                        public_key_der,
                        expires_at: 0,
                        tainted: false,
                    });
                }
                _ => {}
            }
        }
        Ok(bundle)
    }
}

/// The JWK parameters of a certificate's public key.
pub(crate) fn cert_key_params(der: &[u8]) -> Result<KeyParams, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    spki_params(cert.public_key())
}

/// The JWK parameters of a DER SubjectPublicKeyInfo.
pub(crate) fn spki_to_jwk(spki_der: &[u8]) -> Result<KeyParams, String> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the public key".into());
    }
    spki_params(&spki)
}

fn spki_params(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyParams, String> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or("EC key without a named curve")?;
        let (crv, coordinate_len) = if curve == OID_EC_P256 {
            ("P-256", 32)
        } else if curve == OID_NIST_EC_P384 {
            ("P-384", 48)
        } else {
            return Err(format!("unsupported EC curve {curve}"));
        };
        let point = &spki.subject_public_key.data;
        if point.len() != 1 + 2 * coordinate_len || point[0] != 0x04 {
            return Err("EC point is not in uncompressed form".into());
        }
        return Ok(KeyParams {
            kty: "EC".into(),
            crv: Some(crv.into()),
            x: Some(URL_SAFE_NO_PAD.encode(&point[1..=coordinate_len])),
            y: Some(URL_SAFE_NO_PAD.encode(&point[1 + coordinate_len..])),
            ..KeyParams::default()
        });
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err("malformed RSA public key".into());
        };
        return Ok(KeyParams {
            kty: "RSA".into(),
            n: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(rsa.modulus))),
            e: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(rsa.exponent))),
            ..KeyParams::default()
        });
    }
    Err(format!("unsupported public key algorithm {algorithm}"))
}

/// A DER SubjectPublicKeyInfo from JWK parameters.
fn jwk_to_spki(params: &KeyParams) -> Result<Vec<u8>, String> {
    let decode = |name: &str, v: &Option<String>| -> Result<Vec<u8>, String> {
        let v = v
            .as_deref()
            .ok_or(format!("{} key has no {name:?}", params.kty))?;
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|e| format!("{name:?} is not base64url: {e}"))
    };
    match params.kty.as_str() {
        "EC" => {
            let (prefix, len) = match params.crv.as_deref() {
                Some("P-256") => (P256_SPKI_PREFIX, 32),
                Some("P-384") => (P384_SPKI_PREFIX, 48),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let (x, y) = (decode("x", &params.x)?, decode("y", &params.y)?);
            if x.len() != len || y.len() != len {
                return Err(format!("EC coordinates must be {len} bytes each"));
            }
            Ok([prefix, &[0x04], &x, &y].concat())
        }
        "RSA" => {
            let (n, e) = (decode("n", &params.n)?, decode("e", &params.e)?);
            if n.is_empty() || e.is_empty() {
                return Err("RSA modulus and exponent must not be empty".into());
            }
            let key = der_sequence(&[der_uint(&n), der_uint(&e)].concat());
            let mut bit_string = vec![0x00];
            bit_string.extend_from_slice(&key);
            Ok(der_sequence(
                &[RSA_ALGORITHM, &der_tlv(0x03, &bit_string)].concat(),
            ))
        }
        other => Err(format!("unsupported key type {other:?}")),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn der_uint(big_endian: &[u8]) -> Vec<u8> {
    let digits = strip_leading_zeros(big_endian);
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    der_tlv(0x02, &content)
}

fn der_sequence(content: &[u8]) -> Vec<u8> {
    der_tlv(0x30, content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_leading_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A PEM block with 64-column base64 lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
