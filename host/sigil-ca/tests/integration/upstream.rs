//! The upstream disk CA is refused, with the file named, when it cannot be used.

use rcgen::IsCa;
use sigil_ca::{CaError, KeyType, UpstreamCa, UpstreamDiskConfig};

use crate::support::*;

fn config(
    dir: &std::path::Path,
    cert: &str,
    key: &str,
    bundle: Option<&str>,
) -> UpstreamDiskConfig {
    UpstreamDiskConfig {
        cert_file_path: write(dir, "upstream.crt", cert),
        key_file_path: write(dir, "upstream.key", key),
        bundle_file_path: bundle.map(|b| write(dir, "bundle.crt", b)),
    }
}

#[test]
fn key_that_does_not_match_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = upstream_root(KeyType::EcP256);
    let other = upstream_root(KeyType::EcP256);
    let cfg = config(dir.path(), &root.cert_pem(), &other.key_pem(), None);
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamKeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("upstream.key"), "{err}");
    let rsa = upstream_root(KeyType::Rsa2048);
    let cfg = config(dir.path(), &root.cert_pem(), &rsa.key_pem(), None);
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamKeyMismatch { .. }), "{err}");
}

#[test]
fn certificate_that_is_not_a_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = ca_params("Not A CA", now() - 60, now() + 86400);
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![];
    let key = key_pair(KeyType::EcP256);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let cfg = config(
        dir.path(),
        &pem("CERTIFICATE", &der),
        &key.serialize_pem(),
        None,
    );
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(
        matches!(&err, CaError::UpstreamNotCa { reason, .. } if reason.contains("basicConstraints")),
        "{err}"
    );
    assert!(err.to_string().contains("upstream.crt"), "{err}");

    let mut params = ca_params("Leaf-only CA", now() - 60, now() + 86400);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let cfg = config(
        dir.path(),
        &pem("CERTIFICATE", &der),
        &key.serialize_pem(),
        None,
    );
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(
        matches!(&err, CaError::UpstreamNotCa { reason, .. } if reason.contains("pathLenConstraint")),
        "{err}"
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_pair(KeyType::EcP256);
    let expired = ca_params("Old Root", now() - 7200, now() - 3600)
        .self_signed(&key)
        .unwrap();
    let cfg = config(dir.path(), &expired.pem(), &key.serialize_pem(), None);
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamExpired { .. }), "{err}");

    let future = ca_params("Future Root", now() + 3600, now() + 7200)
        .self_signed(&key)
        .unwrap();
    let cfg = config(dir.path(), &future.pem(), &key.serialize_pem(), None);
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamNotYetValid { .. }), "{err}");
}

#[test]
fn intermediate_without_a_bundle_or_with_a_wrong_bundle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = upstream_root(KeyType::EcP256);
    let intermediate = upstream_intermediate(
        &root,
        KeyType::EcP256,
        ca_params("Upstream Intermediate", now() - 60, now() + 86400),
    );
    let cfg = config(
        dir.path(),
        &intermediate.cert_pem(),
        &intermediate.key_pem(),
        None,
    );
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamChainInvalid(_)), "{err}");

    let stranger = upstream_root(KeyType::EcP256);
    let cfg = config(
        dir.path(),
        &intermediate.cert_pem(),
        &intermediate.key_pem(),
        Some(&stranger.cert_pem()),
    );
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamChainInvalid(_)), "{err}");

    // The whole chain in the certificate file, no bundle: accepted, root taken from the file.
    let chain = format!("{}{}", intermediate.cert_pem(), root.cert_pem());
    let cfg = config(dir.path(), &chain, &intermediate.key_pem(), None);
    let upstream = UpstreamCa::load_disk(&cfg, now()).unwrap();
    assert_eq!(upstream.roots(), std::slice::from_ref(&root.der));
    assert_eq!(upstream.chain(), std::slice::from_ref(&intermediate.der));
}

#[test]
fn unreadable_or_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = upstream_root(KeyType::EcP256);
    let cfg = config(dir.path(), "not pem at all", &root.key_pem(), None);
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamFile { .. }), "{err}");
    assert!(err.to_string().contains("upstream.crt"), "{err}");
    let cfg = config(
        dir.path(),
        &root.cert_pem(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        None,
    );
    let err = UpstreamCa::load_disk(&cfg, now()).unwrap_err();
    assert!(matches!(err, CaError::UpstreamFile { .. }), "{err}");
    assert!(err.to_string().contains("upstream.key"), "{err}");
    let mut missing = cfg.clone();
    missing.cert_file_path = dir.path().join("absent.crt");
    let err = UpstreamCa::load_disk(&missing, now()).unwrap_err();
    assert!(err.to_string().contains("absent.crt"), "{err}");
}
