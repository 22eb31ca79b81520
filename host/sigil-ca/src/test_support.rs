//! Helpers shared by the unit tests: a trust domain, CSRs made with rcgen, certificate parsing.

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use sigil_types::{SpiffeId, TrustDomain, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Key, KeyType, Subject, X509Ca};

/// A fixed "now" for deterministic tests (2023-11-14).
pub(crate) const NOW: UnixTime = 1_700_000_000;
pub(crate) const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub(crate) fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

pub(crate) fn id(path: &str) -> SpiffeId {
    SpiffeId::new(&td(), path).unwrap()
}

/// A self-signed CA of `key_type` valid for a day from `NOW`.
pub(crate) fn root_ca(key_type: KeyType) -> X509Ca {
    let key = Key::generate("x509-CA-A", key_type).unwrap();
    X509Ca::self_signed(&td(), key, &Subject::spire_ca_default(), DAY, NOW).unwrap()
}

/// A client key pair of the given rcgen algorithm (RSA is 2048 bits).
pub(crate) fn client_key(alg: &'static rcgen::SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
    } else {
        KeyPair::generate_for(alg).unwrap()
    }
}

/// A CSR signed by `key` with `sans` and subject CN=`cn`.
pub(crate) fn csr_with(key: &KeyPair, sans: Vec<SanType>, cn: &str) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Evil Corp");
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().der().to_vec()
}

/// A P-256 CSR without SANs.
pub(crate) fn plain_csr() -> Vec<u8> {
    csr_with(&client_key(&rcgen::PKCS_ECDSA_P256_SHA256), vec![], "csr")
}

pub(crate) fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

pub(crate) fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

pub(crate) fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}
