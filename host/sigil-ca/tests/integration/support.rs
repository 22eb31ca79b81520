//! Shared helpers: CSRs, PEM files, an upstream CA made with rcgen, `openssl verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sigil_ca::KeyType;
use sigil_types::{SpiffeId, TrustDomain, UnixTime};

pub(crate) fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

pub(crate) fn id(path: &str) -> SpiffeId {
    SpiffeId::new(&td(), path).unwrap()
}

pub(crate) fn now() -> UnixTime {
    sigil_clock::unix_now()
}

pub(crate) fn key_pair(key_type: KeyType) -> KeyPair {
    match key_type {
        KeyType::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyType::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        KeyType::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
        }
        _ => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096).unwrap(),
    }
}

/// A CSR without SANs for a fresh key of `key_type`.
pub(crate) fn csr(key_type: KeyType) -> Vec<u8> {
    let key = key_pair(key_type);
    CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub(crate) fn certs_pem(ders: &[Vec<u8>]) -> String {
    ders.iter().map(|d| pem("CERTIFICATE", d)).collect()
}

pub(crate) fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs `openssl verify -x509_strict` on the leaf of `chain` against `roots`, with the rest of
/// `chain` as untrusted intermediates, for both TLS purposes. Returns openssl's verdict.
pub(crate) fn openssl_verify(roots: &[Vec<u8>], chain: &[Vec<u8>]) -> Result<(), String> {
    openssl_verify_at(roots, chain, now())
}

/// [`openssl_verify`] at the time `at` instead of the wall clock.
pub(crate) fn openssl_verify_at(
    roots: &[Vec<u8>],
    chain: &[Vec<u8>],
    at: UnixTime,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "bundle.pem", &certs_pem(roots));
    let leaf = write(dir.path(), "leaf.pem", &certs_pem(&chain[..1]));
    for purpose in ["sslserver", "sslclient"] {
        let mut cmd = Command::new("openssl");
        cmd.arg("verify")
            .arg("-x509_strict")
            .args(["-purpose", purpose])
            .args(["-attime", &at.to_string()])
            .arg("-CAfile")
            .arg(&ca_file);
        if chain.len() > 1 {
            let untrusted = write(dir.path(), "chain.pem", &certs_pem(&chain[1..]));
            cmd.arg("-untrusted").arg(untrusted);
        }
        let output = cmd
            .arg(&leaf)
            .output()
            .expect("openssl must be installed to run these tests (it is at /usr/bin/openssl)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() || !stdout.trim_end().ends_with(": OK") {
            return Err(format!("{purpose}: {stdout}{stderr}"));
        }
    }
    Ok(())
}

/// An upstream CA certificate and key made with rcgen.
pub(crate) struct TestCa {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) der: Vec<u8>,
}

impl TestCa {
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    pub(crate) fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

pub(crate) fn ca_params(cn: &str, not_before: UnixTime, not_after: UnixTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Upstream Org");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    params
}

/// A self-signed upstream root valid around now for 30 days.
pub(crate) fn upstream_root(key_type: KeyType) -> TestCa {
    let params = ca_params("Upstream Root", now() - 3600, now() + 30 * 86400);
    let key = key_pair(key_type);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    TestCa { params, key, der }
}

/// An upstream intermediate signed by `parent`.
pub(crate) fn upstream_intermediate(
    parent: &TestCa,
    key_type: KeyType,
    mut params: CertificateParams,
) -> TestCa {
    params.use_authority_key_identifier_extension = true;
    let key = key_pair(key_type);
    let der = params
        .signed_by(&key, &parent.issuer())
        .unwrap()
        .der()
        .to_vec();
    TestCa { params, key, der }
}
