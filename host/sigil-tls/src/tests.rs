use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use sigil_types::x509::uri_sans;

use super::*;

fn svid(uri: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().expect("uri"))];
    params.self_signed(&key).expect("cert").der().to_vec()
}

#[test]
fn uri_sans_and_the_peer_id_come_from_the_leaf() {
    let der = svid("spiffe://example.org/spire/server");
    assert_eq!(
        uri_sans(&der).expect("parsed"),
        ["spiffe://example.org/spire/server"]
    );
    let certs = [CertificateDer::from(der)];
    assert_eq!(
        peer_spiffe_id(Some(&certs)).map(|id| id.to_string()),
        Some("spiffe://example.org/spire/server".to_owned())
    );
    assert!(peer_spiffe_id(None).is_none());
    assert!(uri_sans(b"not a certificate").is_err());
}

#[test]
fn only_the_expected_id_is_accepted_without_roots() {
    let verifier = SpiffeServerVerifier::new(
        provider(),
        "spiffe://example.org/spire/server".parse().expect("id"),
    );
    let name = ServerName::try_from("sigil-server").expect("name");
    let good = CertificateDer::from(svid("spiffe://example.org/spire/server"));
    assert!(
        verifier
            .verify_server_cert(&good, &[], &name, &[], UnixTime::now())
            .is_ok()
    );
    let other = CertificateDer::from(svid("spiffe://example.org/spire/agent/x"));
    let refused = verifier
        .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
        .expect_err("another ID");
    assert!(
        refused
            .to_string()
            .contains("expected spiffe://example.org/spire/server")
    );
}

#[test]
fn with_roots_a_chain_to_another_ca_is_refused() {
    let verifier = SpiffeServerVerifier::new(
        provider(),
        "spiffe://example.org/spire/server".parse().expect("id"),
    );
    assert!(verifier.set_roots(std::iter::empty()).is_err());
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&key).expect("root");
    verifier.set_roots([root.der().as_ref()]).expect("roots");
    let name = ServerName::try_from("sigil-server").expect("name");
    let stranger = CertificateDer::from(svid("spiffe://example.org/spire/server"));
    assert!(
        verifier
            .verify_server_cert(&stranger, &[], &name, &[], UnixTime::now())
            .is_err()
    );
}

/// A CA and a leaf it signed, as an agent's SVID chain would be.
fn ca_and_leaf(uri: &str) -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().expect("uri"))];
    let leaf = leaf.signed_by(&key, &issuer).expect("leaf");
    (ca.der().to_vec(), leaf.der().to_vec())
}

#[derive(Debug)]
struct Fixed(std::sync::Mutex<Vec<Vec<u8>>>);

impl TrustRoots for Fixed {
    fn roots(&self) -> Vec<Vec<u8>> {
        self.0.lock().expect("lock").clone()
    }
}

#[test]
fn client_certificates_are_checked_against_the_roots_of_each_handshake() {
    let (ca, leaf) = ca_and_leaf("spiffe://example.org/spire/agent/x");
    let (other_ca, _) = ca_and_leaf("spiffe://example.org/other");
    let roots = Arc::new(Fixed(std::sync::Mutex::new(vec![ca])));
    let verifier = BundleClientVerifier::new(provider(), roots.clone());
    assert!(verifier.offer_client_auth());
    assert!(
        !verifier.client_auth_mandatory(),
        "AttestAgent comes before an SVID"
    );
    let leaf = CertificateDer::from(leaf);
    assert!(
        verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .is_ok()
    );
    // The bundle rotates to another CA: the same certificate is refused at the next handshake.
    *roots.0.lock().expect("lock") = vec![other_ca];
    assert!(
        verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .is_err()
    );
}
