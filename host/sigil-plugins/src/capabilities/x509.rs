//! `x509`: certificate chain and signature checks, done natively.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Longest chain followed, leaf to root.
const MAX_DEPTH: usize = 8;

/// What the host read from one certificate (the WIT `certificate` record, host side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateInfo {
    pub(crate) subject_common_name: Option<String>,
    pub(crate) serial_number: String,
    pub(crate) sha1_fingerprint: String,
    pub(crate) sha256_fingerprint: String,
    pub(crate) dns_names: Vec<String>,
    pub(crate) uris: Vec<String>,
    pub(crate) not_after: i64,
}

/// Verify `chain` (leaf first, then intermediates in any order) up to one of the PEM
/// `roots` at `now`. Returns the leaf and the authorities from its issuer to the root.
pub(crate) fn verify_chain(
    chain: &[Vec<u8>],
    roots_pem: &str,
    now: i64,
) -> Result<(CertificateInfo, Vec<CertificateInfo>), String> {
    let roots: Vec<Vec<u8>> = pem::parse_many(roots_pem)
        .map_err(|_| "the roots are not PEM".to_owned())?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if roots.is_empty() {
        return Err("no root certificates were given".into());
    }
    let (leaf_der, intermediates) = chain
        .split_first()
        .ok_or_else(|| "the chain is empty".to_owned())?;
    let leaf = parse(leaf_der, "the leaf")?;
    check_validity(&leaf, now, "the leaf")?;
    let mut authorities = Vec::new();
    let mut current = leaf.clone();
    for _ in 0..MAX_DEPTH {
        if let Some(root_der) = find_issuer(&current, &roots) {
            let root = parse(root_der, "a root")?;
            check_validity(&root, now, "the root")?;
            authorities.push(info(root_der, &root));
            return Ok((info(leaf_der, &leaf), authorities));
        }
        let issuer_der = find_issuer(&current, intermediates).ok_or_else(|| {
            format!(
                "no issuer of \"{}\" is among the roots or the chain",
                current.subject()
            )
        })?;
        let issuer = parse(issuer_der, "an intermediate")?;
        check_validity(&issuer, now, "an intermediate")?;
        authorities.push(info(issuer_der, &issuer));
        current = issuer;
    }
    Err(format!("the chain is longer than {MAX_DEPTH} certificates"))
}

/// Check `signature` over `message` with `certificate`'s public key.
pub(crate) fn verify_signature(
    certificate: &[u8],
    message: &[u8],
    signature_bytes: &[u8],
) -> Result<(), String> {
    let cert = parse(certificate, "the certificate")?;
    let spki = cert.public_key();
    let key_bytes: &[u8] = &spki.subject_public_key.data;
    let algorithm: &'static dyn VerificationAlgorithm = match spki.parsed() {
        Ok(PublicKey::EC(point)) => match point.data().len() {
            65 => &signature::ECDSA_P256_SHA256_ASN1,
            97 => &signature::ECDSA_P384_SHA384_ASN1,
            _ => return Err("the certificate's EC key is not P-256 or P-384".into()),
        },
        Ok(PublicKey::RSA(_)) => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return Err("the certificate's key is not ECDSA or RSA".into()),
    };
    UnparsedPublicKey::new(algorithm, key_bytes)
        .verify(message, signature_bytes)
        .map_err(|_| "the signature does not verify".to_owned())
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(format!("{what} has trailing bytes")),
        Err(_) => Err(format!("{what} is not a DER certificate")),
    }
}

fn check_validity(cert: &X509Certificate<'_>, now: i64, what: &str) -> Result<(), String> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(format!("{what} is not valid yet"));
    }
    if now > validity.not_after.timestamp() {
        return Err(format!("{what} has expired"));
    }
    Ok(())
}

/// The certificate among `candidates` that is a CA, whose subject is `cert`'s issuer,
/// and whose key verifies `cert`'s signature.
fn find_issuer<'a>(cert: &X509Certificate<'_>, candidates: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    candidates.iter().map(Vec::as_slice).find(|der| {
        parse(der, "").is_ok_and(|candidate| {
            candidate.subject() == cert.issuer()
                && candidate.is_ca()
                && cert.verify_signature(Some(candidate.public_key())).is_ok()
        })
    })
}

fn info(der: &[u8], cert: &X509Certificate<'_>) -> CertificateInfo {
    let mut dns_names = Vec::new();
    let mut uris = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                    _ => {}
                }
            }
        }
    }
    CertificateInfo {
        subject_common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        serial_number: format!("{:x}", cert.serial),
        sha1_fingerprint: hex::encode(
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(),
        ),
        sha256_fingerprint: hex::encode(digest::digest(&digest::SHA256, der).as_ref()),
        dns_names,
        uris,
        not_after: cert.validity().not_after.timestamp(),
    }
}
