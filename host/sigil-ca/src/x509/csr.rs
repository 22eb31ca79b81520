//! CSR checks: parse strictly, allow only listed key types, verify the self-signature, and
//! accept only the SANs the entry grants. Nothing from the CSR but its public key ever reaches
//! a certificate.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_SIG_ED25519,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CaError;

/// CSRs larger than this are refused before parsing.
const MAX_CSR_LEN: usize = 64 * 1024;

/// Which public keys a CSR may carry. The default allows EC P-256, EC P-384 and RSA of at least
/// 2048 bits, as SPIRE does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrKeyPolicy {
    /// Allow ECDSA P-256 keys.
    pub ec_p256: bool,
    /// Allow ECDSA P-384 keys.
    pub ec_p384: bool,
    /// Allow RSA keys with at least this many modulus bits; `None` refuses RSA.
    pub rsa_min_bits: Option<usize>,
}

impl Default for CsrKeyPolicy {
    fn default() -> Self {
        Self {
            ec_p256: true,
            ec_p384: true,
            rsa_min_bits: Some(2048),
        }
    }
}

impl CsrKeyPolicy {
    fn describe(&self) -> String {
        let mut allowed = Vec::new();
        if self.ec_p256 {
            allowed.push("EC P-256".to_owned());
        }
        if self.ec_p384 {
            allowed.push("EC P-384".to_owned());
        }
        if let Some(bits) = self.rsa_min_bits {
            allowed.push(format!("RSA >= {bits} bits"));
        }
        if allowed.is_empty() {
            "nothing".to_owned()
        } else {
            allowed.join(", ")
        }
    }
}

/// A CSR's public key, ready to be placed in a certificate.
#[derive(Debug, Clone)]
pub(crate) struct CsrPublicKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl CsrPublicKey {
    /// Whether the key is RSA (the certificate then also allows keyEncipherment).
    pub(crate) fn is_rsa(&self) -> bool {
        self.alg == &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// What a CSR's SANs may be.
pub(crate) struct SanRules<'a> {
    /// The only URI SAN allowed (the SPIFFE ID being issued), if any.
    pub(crate) uri: &'a str,
    /// DNS SANs allowed (the entry's DNS names), compared ignoring ASCII case.
    pub(crate) dns_names: &'a [String],
}

/// Parses and checks a CSR; returns its public key.
pub(crate) fn check_csr(
    der: &[u8],
    policy: &CsrKeyPolicy,
    sans: &SanRules<'_>,
) -> Result<CsrPublicKey, CaError> {
    if der.len() > MAX_CSR_LEN {
        return Err(CaError::CsrMalformed(format!(
            "CSR is larger than {MAX_CSR_LEN} bytes"
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CaError::CsrMalformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CaError::CsrMalformed(
            "trailing bytes after the CSR".to_owned(),
        ));
    }
    let public_key = check_key(&csr.certification_request_info.subject_pki, policy)?;
    verify_signature(&csr)?;
    check_sans(&csr, sans)?;
    Ok(public_key)
}

fn check_key(
    spki: &SubjectPublicKeyInfo<'_>,
    policy: &CsrKeyPolicy,
) -> Result<CsrPublicKey, CaError> {
    let refuse = |key_type: String| CaError::KeyTypeNotAllowed {
        key_type,
        allowed: policy.describe(),
    };
    let algorithm = &spki.algorithm.algorithm;
    let raw = spki.subject_public_key.data.to_vec();
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CaError::CsrMalformed("EC key without a named curve".to_owned()))?;
        let (allowed, name, alg) = if curve == OID_EC_P256 {
            (policy.ec_p256, "EC P-256", &rcgen::PKCS_ECDSA_P256_SHA256)
        } else if curve == OID_NIST_EC_P384 {
            (policy.ec_p384, "EC P-384", &rcgen::PKCS_ECDSA_P384_SHA384)
        } else if curve == OID_NIST_EC_P521 {
            return Err(refuse("EC P-521".to_owned()));
        } else {
            return Err(refuse(format!("EC curve {curve}")));
        };
        if !allowed {
            return Err(refuse(name.to_owned()));
        }
        return Ok(CsrPublicKey { raw, alg });
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => {
                return Err(CaError::CsrMalformed(
                    "RSA public key is malformed".to_owned(),
                ));
            }
        };
        return match policy.rsa_min_bits {
            Some(min) if bits >= min => Ok(CsrPublicKey {
                raw,
                alg: &rcgen::PKCS_RSA_SHA256,
            }),
            _ => Err(refuse(format!("RSA-{bits}"))),
        };
    }
    if *algorithm == OID_SIG_ED25519 {
        return Err(refuse("Ed25519".to_owned()));
    }
    Err(refuse(format!("public key algorithm {algorithm}")))
}

/// The bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    let leading = trimmed.first().map_or(0, |b| b.leading_zeros() as usize);
    trimmed.len() * 8 - leading
}

fn verify_signature(csr: &X509CertificationRequest<'_>) -> Result<(), CaError> {
    let algorithm = &csr.signature_algorithm.algorithm;
    // ecdsa-with-SHA1 is not even known to the verifier: it fails as unsupported below.
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return Err(CaError::CsrSignatureAlgorithmNotSupported(format!(
            "{algorithm} (SHA-1)"
        )));
    }
    csr.verify_signature().map_err(|e| match e {
        X509Error::SignatureUnsupportedAlgorithm => {
            CaError::CsrSignatureAlgorithmNotSupported(algorithm.to_string())
        }
        _ => CaError::CsrSignatureInvalid,
    })
}

fn check_sans(csr: &X509CertificationRequest<'_>, rules: &SanRules<'_>) -> Result<(), CaError> {
    let mut san_extensions = 0;
    let mut uris = 0;
    for attribute in csr.certification_request_info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() else {
            continue;
        };
        for extension in &request.extensions {
            if extension.oid != OID_X509_EXT_SUBJECT_ALT_NAME {
                // Other requested extensions are ignored: none is copied to the certificate.
                continue;
            }
            san_extensions += 1;
            if san_extensions > 1 {
                return Err(CaError::CsrMalformed(
                    "more than one subject alternative name extension".to_owned(),
                ));
            }
            let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() else {
                return Err(CaError::CsrMalformed(
                    "subject alternative name extension does not parse".to_owned(),
                ));
            };
            for name in &san.general_names {
                check_general_name(name, rules, &mut uris)?;
            }
        }
    }
    Ok(())
}

fn check_general_name(
    name: &GeneralName<'_>,
    rules: &SanRules<'_>,
    uris: &mut usize,
) -> Result<(), CaError> {
    let refuse = |san: String, reason| Err(CaError::SanNotAllowed { san, reason });
    match name {
        GeneralName::URI(uri) => {
            *uris += 1;
            if *uris > 1 {
                return refuse(format!("URI:{uri}"), "a CSR may carry at most one URI SAN");
            }
            if *uri != rules.uri {
                return refuse(
                    format!("URI:{uri}"),
                    "the URI SAN must be the SPIFFE ID being issued",
                );
            }
            Ok(())
        }
        GeneralName::DNSName(dns) => {
            if rules
                .dns_names
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(dns))
            {
                Ok(())
            } else {
                refuse(
                    format!("DNS:{dns}"),
                    "the DNS name is not among the entry's DNS names",
                )
            }
        }
        GeneralName::IPAddress(ip) => refuse(
            format!("IP:{}", ip_string(ip)),
            "only URI and DNS SANs may be requested",
        ),
        GeneralName::RFC822Name(email) => refuse(
            format!("email:{email}"),
            "only URI and DNS SANs may be requested",
        ),
        GeneralName::Invalid(_, _) => Err(CaError::CsrMalformed(
            "a subject alternative name does not parse".to_owned(),
        )),
        other => refuse(
            format!("{other:?}"),
            "only URI and DNS SANs may be requested",
        ),
    }
}

fn ip_string(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return std::net::Ipv4Addr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return std::net::Ipv6Addr::from(v6).to_string();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
