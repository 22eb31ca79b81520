//! Every key type, both CA shapes: the SVIDs sigil mints verify with `openssl verify
//! -x509_strict`, for TLS server and client use.

use sigil_ca::{
    CaError, Key, KeyType, Subject, UpstreamCa, UpstreamDiskConfig, X509Ca, X509SvidParams,
};

use crate::support::*;

const TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn params() -> X509SvidParams {
    let mut params = X509SvidParams::new(id("/ns/default/sa/web"));
    params.dns_names = vec!["web.example.org".to_owned()];
    params
}

#[test]
fn svids_of_a_self_signed_root_verify_for_each_key_type() {
    for key_type in KeyType::ALL {
        let key = Key::generate("x509-CA-A", key_type).unwrap();
        let ca = X509Ca::self_signed(&td(), key, &Subject::spire_ca_default(), TTL, now()).unwrap();
        let issued = ca.mint_x509_svid(&csr(key_type), &params(), now()).unwrap();
        assert_eq!(issued.cert_chain.len(), 1);
        openssl_verify(ca.trust_anchors(), &issued.cert_chain)
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
    }
}

#[test]
fn svids_of_an_upstream_disk_intermediate_verify_for_each_key_type() {
    for key_type in KeyType::ALL {
        // Upstream: a self-signed root in cert_file_path, no bundle file.
        let dir = tempfile::tempdir().unwrap();
        let root = upstream_root(key_type);
        let config = UpstreamDiskConfig {
            cert_file_path: write(dir.path(), "upstream.crt", &root.cert_pem()),
            key_file_path: write(dir.path(), "upstream.key", &root.key_pem()),
            bundle_file_path: None,
        };
        let upstream = UpstreamCa::load_disk(&config, now()).unwrap();
        assert_eq!(upstream.roots(), std::slice::from_ref(&root.der));
        assert!(
            upstream.chain().is_empty(),
            "the upstream root is not served"
        );
        let key = Key::generate("x509-CA-A", key_type).unwrap();
        let ca = X509Ca::signed_by_upstream(
            &td(),
            key,
            &Subject::spire_ca_default(),
            TTL,
            &upstream,
            now(),
        )
        .unwrap();
        let issued = ca.mint_x509_svid(&csr(key_type), &params(), now()).unwrap();
        assert_eq!(issued.cert_chain.len(), 2, "leaf + sigil intermediate");
        assert_eq!(issued.cert_chain[1], ca.cert_der());
        openssl_verify(ca.trust_anchors(), &issued.cert_chain)
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
    }
}

#[test]
fn svids_under_an_upstream_intermediate_with_a_bundle_file_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = upstream_root(KeyType::EcP384);
    let intermediate = upstream_intermediate(
        &root,
        KeyType::Rsa2048,
        ca_params("Upstream Intermediate", now() - 3600, now() + 7 * 86400),
    );
    let config = UpstreamDiskConfig {
        cert_file_path: write(dir.path(), "upstream.crt", &intermediate.cert_pem()),
        key_file_path: write(dir.path(), "upstream.key", &intermediate.key_pem()),
        bundle_file_path: Some(write(dir.path(), "bundle.crt", &root.cert_pem())),
    };
    let upstream = UpstreamCa::load_disk(&config, now()).unwrap();
    let ca = X509Ca::signed_by_upstream(
        &td(),
        Key::generate("x509-CA-A", KeyType::EcP256).unwrap(),
        &Subject::spire_ca_default(),
        TTL,
        &upstream,
        now(),
    )
    .unwrap();
    assert_eq!(ca.trust_anchors(), std::slice::from_ref(&root.der));
    let issued = ca
        .mint_x509_svid(&csr(KeyType::EcP256), &params(), now())
        .unwrap();
    assert_eq!(
        issued.cert_chain[1..],
        [ca.cert_der().to_vec(), intermediate.der.clone()],
        "served chain: sigil CA, then the upstream intermediate, root excluded"
    );
    openssl_verify(ca.trust_anchors(), &issued.cert_chain).unwrap();
    // Without the upstream intermediate, the chain does not verify: the test can fail.
    assert!(openssl_verify(ca.trust_anchors(), &issued.cert_chain[..2]).is_err());
}

#[test]
fn openssl_refuses_an_svid_against_a_foreign_bundle() {
    let ca = X509Ca::self_signed(
        &td(),
        Key::generate("x509-CA-A", KeyType::EcP256).unwrap(),
        &Subject::spire_ca_default(),
        TTL,
        now(),
    )
    .unwrap();
    let other = X509Ca::self_signed(
        &td(),
        Key::generate("x509-CA-B", KeyType::EcP256).unwrap(),
        &Subject::spire_ca_default(),
        TTL,
        now(),
    )
    .unwrap();
    let issued = ca
        .mint_x509_svid(&csr(KeyType::EcP256), &params(), now())
        .unwrap();
    let err = openssl_verify(other.trust_anchors(), &issued.cert_chain).unwrap_err();
    assert!(err.contains("error"), "{err}");
}

#[test]
fn rsa_1024_csr_made_by_openssl_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csr_path = dir.path().join("req.der");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=weak",
        ])
        .args(["-outform", "DER", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(&csr_path)
        .output()
        .expect("openssl must be installed to run these tests");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let csr = std::fs::read(&csr_path).unwrap();
    let ca = X509Ca::self_signed(
        &td(),
        Key::generate("x509-CA-A", KeyType::EcP256).unwrap(),
        &Subject::spire_ca_default(),
        TTL,
        now(),
    )
    .unwrap();
    let err = ca.mint_x509_svid(&csr, &params(), now()).unwrap_err();
    assert!(
        matches!(&err, CaError::KeyTypeNotAllowed { key_type, .. } if key_type == "RSA-1024"),
        "{err}"
    );
}
