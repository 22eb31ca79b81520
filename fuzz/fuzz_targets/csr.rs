//! Certificate signing requests, as an agent or a downstream server sends them. Properties,
//! for every CSR the CA signs: the CSR is well-formed DER whose self-signature verifies (checked
//! here with x509-parser, not through sigil-ca), its key is one the default policy allows, every
//! SAN it requests is the SPIFFE ID being issued or one of the entry's DNS names, and the SVID
//! carries exactly the CSR's public key, the SPIFFE ID as its only URI SAN, and verifies under
//! the CA's key.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sigil_ca::{Key, KeyType, Subject, X509Ca, X509SvidParams};
use sigil_types::{SpiffeId, TrustDomain};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

const NOW: i64 = 1_800_000_000;
const ID: &str = "spiffe://example.org/workload";
const DNS: [&str; 2] = ["example.org", "Svc.Example.ORG"];

struct Fixture {
    ca: X509Ca,
    params: X509SvidParams,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let td = TrustDomain::new("example.org").expect("valid");
        let key = Key::generate("fuzz-ca", KeyType::EcP256).expect("key generation");
        let ca = X509Ca::self_signed(
            &td,
            key,
            &Subject::spire_ca_default(),
            Duration::from_secs(86_400),
            NOW,
        )
        .expect("self-signed CA");
        let mut params = X509SvidParams::new(ID.parse::<SpiffeId>().expect("valid"));
        params.dns_names = DNS.iter().map(|d| (*d).to_owned()).collect();
        Fixture { ca, params }
    })
}

fuzz_target!(|der: &[u8]| {
    let fixture = fixture();
    let Ok(issued) = fixture.ca.mint_x509_svid(der, &fixture.params, NOW) else {
        return;
    };

    let (rest, csr) = X509CertificationRequest::from_der(der).expect("a signed CSR parses");
    assert!(rest.is_empty(), "a signed CSR had trailing bytes");
    csr.verify_signature()
        .expect("a signed CSR's self-signature verifies");
    let spki = &csr.certification_request_info.subject_pki;
    assert_key_allowed(spki);
    for name in requested_sans(&csr) {
        match name {
            GeneralName::URI(uri) => assert_eq!(*uri, ID),
            GeneralName::DNSName(dns) => assert!(
                DNS.iter().any(|allowed| allowed.eq_ignore_ascii_case(dns)),
                "DNS SAN {dns:?} was not granted"
            ),
            other => panic!("a CSR requesting {other:?} was signed"),
        }
    }

    let leaf_der = issued.cert_chain.first().expect("a chain has a leaf");
    let (_, leaf) = X509Certificate::from_der(leaf_der).expect("the SVID parses");
    assert_eq!(
        leaf.public_key().raw,
        spki.raw,
        "the SVID's key is not the CSR's"
    );
    let (_, ca_cert) = X509Certificate::from_der(fixture.ca.cert_der()).expect("the CA parses");
    leaf.verify_signature(Some(ca_cert.public_key()))
        .expect("the SVID verifies under the CA key");
    let san = leaf
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("the SVID has a SAN extension");
    let uris: Vec<_> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [ID]);
});

fn assert_key_allowed(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .expect("an EC key names its curve");
        assert!(
            curve == OID_EC_P256 || curve == OID_NIST_EC_P384,
            "curve {curve}"
        );
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            panic!("a malformed RSA key was signed");
        };
        assert!(rsa.key_size() >= 2048, "RSA-{} was signed", rsa.key_size());
    } else {
        panic!("a key of algorithm {algorithm} was signed");
    }
}

fn requested_sans<'a>(csr: &'a X509CertificationRequest<'a>) -> Vec<&'a GeneralName<'a>> {
    let mut names = Vec::new();
    for attribute in csr.certification_request_info.iter_attributes() {
        if let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() {
            for extension in &request.extensions {
                if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
                    names.extend(san.general_names.iter());
                }
            }
        }
    }
    names
}
