//! One test per rule of the SPIFFE X509-SVID specification, and one per CSR refusal.

use std::time::Duration;

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{GeneralName, X509Certificate};

use super::*;
use crate::test_support::*;

fn mint(ca: &X509Ca, csr: &[u8], params: &X509SvidParams) -> Vec<u8> {
    let issued = ca.mint_x509_svid(csr, params, NOW).unwrap();
    issued.cert_chain[0].clone()
}

fn workload_params() -> X509SvidParams {
    X509SvidParams::new(id("/ns/default/sa/web"))
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn key_identifier(cert: &X509Certificate<'_>, authority: bool) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) if authority => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectKeyIdentifier(ski) if !authority => Some(ski.0.to_vec()),
            _ => None,
        })
}

// === the X509-SVID rules ===

#[test]
fn svid_has_exactly_one_uri_san_the_spiffe_id() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let cert = parse(&der);
    assert_eq!(
        sans(&cert),
        vec!["URI:spiffe://example.org/ns/default/sa/web"]
    );
}

#[test]
fn csr_carrying_the_requested_spiffe_id_is_accepted() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let csr = csr_with(
        &key,
        vec![uri("spiffe://example.org/ns/default/sa/web")],
        "x",
    );
    let cert_der = mint(&ca, &csr, &workload_params());
    let cert = parse(&cert_der);
    assert_eq!(sans(&cert).len(), 1);
    assert_eq!(
        cert.public_key().subject_public_key.data,
        key.public_key_raw()
    );
}

#[test]
fn dns_sans_come_from_the_entry_and_first_is_the_cn() {
    let ca = root_ca(KeyType::EcP256);
    let mut params = workload_params();
    params.dns_names = vec!["web.example.org".into(), "www.example.org".into()];
    let der = mint(&ca, &plain_csr(), &params);
    let cert = parse(&der);
    assert_eq!(
        sans(&cert),
        vec![
            "URI:spiffe://example.org/ns/default/sa/web",
            "DNS:web.example.org",
            "DNS:www.example.org"
        ]
    );
    assert_eq!(
        cert.subject().to_string(),
        "C=US, O=SPIRE, CN=web.example.org"
    );
}

#[test]
fn subject_comes_from_the_params_never_from_the_csr() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let csr = csr_with(&key, vec![], "admin.evil.example");
    let cert_der = mint(&ca, &csr, &workload_params());
    assert_eq!(parse(&cert_der).subject().to_string(), "C=US, O=SPIRE");

    let mut params = workload_params();
    params.subject = Some(Subject {
        country: Some("DE".into()),
        organization: Some("Acme".into()),
        common_name: None,
    });
    let cert_der = mint(&ca, &csr, &params);
    assert_eq!(parse(&cert_der).subject().to_string(), "C=DE, O=Acme");
}

#[test]
fn basic_constraints_ca_false_and_critical() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let cert = parse(&der);
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(!bc.value.ca);
    assert!(!cert.is_ca());
}

#[test]
fn key_usage_is_digital_signature_only_and_critical() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let cert = parse(&der);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert!(!ku.value.key_encipherment());
    assert!(!ku.value.key_cert_sign());
    assert!(!ku.value.crl_sign());
}

#[test]
fn rsa_keys_also_get_key_encipherment() {
    let ca = root_ca(KeyType::EcP256);
    let csr = csr_with(&client_key(&rcgen::PKCS_RSA_SHA256), vec![], "x");
    let der = mint(&ca, &csr, &workload_params());
    let cert = parse(&der);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());
    assert!(!ku.value.key_cert_sign());
}

#[test]
fn extended_key_usage_is_server_and_client_auth() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let cert = parse(&der);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && !eku.code_signing && eku.other.is_empty());
}

#[test]
fn serial_is_positive_random_and_at_least_64_bits() {
    let ca = root_ca(KeyType::EcP256);
    let csr = plain_csr();
    let a = mint(&ca, &csr, &workload_params());
    let b = mint(&ca, &csr, &workload_params());
    let (a, b) = (parse(&a), parse(&b));
    assert_ne!(a.raw_serial(), b.raw_serial());
    for cert in [a, b] {
        let serial = cert.raw_serial();
        assert!(serial[0] & 0x80 == 0, "serial must be positive");
        assert!(
            cert.serial.bits() >= 64,
            "serial has {} bits",
            cert.serial.bits()
        );
        assert!(cert.serial.bits() <= 128);
    }
}

#[test]
fn validity_is_backdated_and_lasts_the_ttl() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let cert = parse(&der);
    assert_eq!(cert.validity().not_before.timestamp(), NOW - 10);
    assert_eq!(cert.validity().not_after.timestamp(), NOW + 3600);

    let mut params = workload_params();
    params.ttl = Some(Duration::from_secs(600));
    let der = mint(&ca, &plain_csr(), &params);
    assert_eq!(parse(&der).validity().not_after.timestamp(), NOW + 600);
}

#[test]
fn not_after_is_capped_at_the_ca_not_after() {
    let ca = root_ca(KeyType::EcP256);
    let mut params = workload_params();
    params.ttl = Some(Duration::from_secs(7 * 24 * 3600));
    let issued = ca.mint_x509_svid(&plain_csr(), &params, NOW).unwrap();
    assert_eq!(issued.expires_at, ca.not_after());
    let leaf = parse(&issued.cert_chain[0]);
    assert_eq!(leaf.validity().not_after.timestamp(), ca.not_after());
}

#[test]
fn aki_is_the_ca_ski_and_the_leaf_verifies() {
    let ca = root_ca(KeyType::EcP256);
    let der = mint(&ca, &plain_csr(), &workload_params());
    let leaf = parse(&der);
    let ca_cert = parse(ca.cert_der());
    let ski = key_identifier(&ca_cert, false).unwrap();
    assert_eq!(key_identifier(&leaf, true).unwrap(), ski);
    assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
    leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
}

#[test]
fn chain_of_a_root_ca_is_the_leaf_alone() {
    let ca = root_ca(KeyType::EcP256);
    let issued = ca
        .mint_x509_svid(&plain_csr(), &workload_params(), NOW)
        .unwrap();
    assert_eq!(issued.cert_chain.len(), 1);
    assert_eq!(ca.trust_anchors(), &[ca.cert_der().to_vec()]);
}

#[test]
fn root_ca_certificate_follows_spire() {
    for key_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
        let ca = root_ca(key_type);
        let cert = parse(ca.cert_der());
        assert_eq!(cert.subject().to_string(), "C=US, O=SPIFFE");
        assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert_eq!(sans(&cert), vec!["URI:spiffe://example.org"]);
        assert!(key_identifier(&cert, false).is_some());
        assert_eq!(cert.validity().not_before.timestamp(), NOW - 10);
        assert_eq!(cert.validity().not_after.timestamp(), NOW + 24 * 3600);
        cert.verify_signature(None).unwrap();
    }
}

#[test]
fn svid_with_a_key_the_ca_generates() {
    let ca = root_ca(KeyType::EcP256);
    for key_type in [KeyType::EcP256, KeyType::Rsa2048] {
        let svid = ca
            .mint_x509_svid_with_new_key(key_type, &X509SvidParams::new(id("/spire/server")), NOW)
            .unwrap();
        let leaf = parse(&svid.cert_chain[0]);
        let key = Key::from_pkcs8_der("k", svid.private_key.secret_pkcs8_der()).unwrap();
        assert_eq!(key.key_type(), key_type);
        assert_eq!(leaf.public_key().raw, key.public_key_der());
        assert_eq!(svid.expires_at, NOW + 3600);
    }
}

#[test]
fn downstream_ca_from_a_csr() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let csr = csr_with(&key, vec![uri("spiffe://example.org")], "downstream");
    let issued = ca
        .mint_downstream_ca(&csr, &Subject::spire_ca_default(), DAY, NOW + 60)
        .unwrap();
    let cert = parse(&issued.cert_chain[0]);
    assert!(cert.is_ca());
    assert_eq!(sans(&cert), vec!["URI:spiffe://example.org"]);
    assert_eq!(issued.expires_at, ca.not_after());
    let ca_cert = parse(ca.cert_der());
    assert_eq!(key_identifier(&cert, true), key_identifier(&ca_cert, false));

    let csr = csr_with(
        &key,
        vec![uri("spiffe://example.org/workload")],
        "downstream",
    );
    let err = ca
        .mint_downstream_ca(&csr, &Subject::spire_ca_default(), DAY, NOW)
        .unwrap_err();
    assert!(matches!(err, CaError::SanNotAllowed { .. }), "{err}");
}

// === refusals ===

#[test]
fn csr_with_a_flipped_signature_byte_is_refused() {
    let ca = root_ca(KeyType::EcP256);
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_RSA_SHA256] {
        let mut csr = csr_with(&client_key(alg), vec![], "x");
        let last = csr.len() - 1;
        csr[last] ^= 0x01;
        let err = ca
            .mint_x509_svid(&csr, &workload_params(), NOW)
            .unwrap_err();
        assert!(matches!(err, CaError::CsrSignatureInvalid), "{err}");
    }
}

#[test]
fn csr_with_a_disallowed_key_type_is_refused() {
    let ca = root_ca(KeyType::EcP256);
    let p521 = client_key(&rcgen::PKCS_ECDSA_P521_SHA512);
    let err = ca
        .mint_x509_svid(&csr_with(&p521, vec![], "x"), &workload_params(), NOW)
        .unwrap_err();
    assert!(
        matches!(&err, CaError::KeyTypeNotAllowed { key_type, .. } if key_type == "EC P-521"),
        "{err}"
    );
    let ed = client_key(&rcgen::PKCS_ED25519);
    let err = ca
        .mint_x509_svid(&csr_with(&ed, vec![], "x"), &workload_params(), NOW)
        .unwrap_err();
    assert!(matches!(&err, CaError::KeyTypeNotAllowed { key_type, .. } if key_type == "Ed25519"));

    let strict = root_ca(KeyType::EcP256).with_csr_key_policy(CsrKeyPolicy {
        ec_p256: true,
        ec_p384: false,
        rsa_min_bits: Some(3072),
    });
    let p384 = csr_with(&client_key(&rcgen::PKCS_ECDSA_P384_SHA384), vec![], "x");
    let err = strict
        .mint_x509_svid(&p384, &workload_params(), NOW)
        .unwrap_err();
    assert!(matches!(&err, CaError::KeyTypeNotAllowed { key_type, .. } if key_type == "EC P-384"));
    let rsa = csr_with(&client_key(&rcgen::PKCS_RSA_SHA256), vec![], "x");
    let err = strict
        .mint_x509_svid(&rsa, &workload_params(), NOW)
        .unwrap_err();
    assert!(matches!(&err, CaError::KeyTypeNotAllowed { key_type, .. } if key_type == "RSA-2048"));
    assert!(err.to_string().contains("RSA >= 3072 bits"), "{err}");
}

#[test]
fn csr_with_a_foreign_uri_san_is_refused_naming_it() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    for foreign in [
        "spiffe://example.org/ns/default/sa/admin",
        "spiffe://evil.org/ns/default/sa/web",
    ] {
        let csr = csr_with(&key, vec![uri(foreign)], "x");
        let err = ca
            .mint_x509_svid(&csr, &workload_params(), NOW)
            .unwrap_err();
        assert!(
            matches!(&err, CaError::SanNotAllowed { san, .. } if *san == format!("URI:{foreign}")),
            "{err}"
        );
    }
}

#[test]
fn csr_with_two_uri_sans_is_refused() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let wanted = "spiffe://example.org/ns/default/sa/web";
    for second in [wanted, "https://example.org/"] {
        let csr = csr_with(&key, vec![uri(wanted), uri(second)], "x");
        let err = ca
            .mint_x509_svid(&csr, &workload_params(), NOW)
            .unwrap_err();
        assert!(
            matches!(&err, CaError::SanNotAllowed { san, reason }
                if *san == format!("URI:{second}") && reason.contains("at most one")),
            "{err}"
        );
    }
}

#[test]
fn csr_dns_sans_must_be_among_the_entry_dns_names() {
    let ca = root_ca(KeyType::EcP256);
    let key = client_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut params = workload_params();
    params.dns_names = vec!["web.example.org".into()];
    let ok = csr_with(&key, vec![dns("WEB.example.org")], "x");
    ca.mint_x509_svid(&ok, &params, NOW).unwrap();
    let bad = csr_with(
        &key,
        vec![dns("web.example.org"), dns("bank.example.com")],
        "x",
    );
    let err = ca.mint_x509_svid(&bad, &params, NOW).unwrap_err();
    assert!(
        matches!(&err, CaError::SanNotAllowed { san, .. } if san == "DNS:bank.example.com"),
        "{err}"
    );
    let ip = csr_with(
        &key,
        vec![rcgen::SanType::IpAddress([10, 0, 0, 1].into())],
        "x",
    );
    let err = ca.mint_x509_svid(&ip, &params, NOW).unwrap_err();
    assert!(
        matches!(&err, CaError::SanNotAllowed { san, .. } if san == "IP:10.0.0.1"),
        "{err}"
    );
}

#[test]
fn spiffe_id_of_another_trust_domain_is_refused() {
    let ca = root_ca(KeyType::EcP256);
    let other = sigil_types::TrustDomain::new("other.org").unwrap();
    let params = X509SvidParams::new(SpiffeId::new(&other, "/web").unwrap());
    let err = ca.mint_x509_svid(&plain_csr(), &params, NOW).unwrap_err();
    assert!(
        matches!(err, CaError::SpiffeIdNotInTrustDomain { .. }),
        "{err}"
    );
}

#[test]
fn garbage_and_expired_ca_are_refused() {
    let ca = root_ca(KeyType::EcP256);
    for garbage in [&b""[..], b"\x30\x03\x02\x01\x00", &[0xff; 64]] {
        let err = ca
            .mint_x509_svid(garbage, &workload_params(), NOW)
            .unwrap_err();
        assert!(matches!(err, CaError::CsrMalformed(_)), "{err}");
    }
    let mut trailing = plain_csr();
    trailing.push(0);
    let err = ca
        .mint_x509_svid(&trailing, &workload_params(), NOW)
        .unwrap_err();
    assert!(matches!(err, CaError::CsrMalformed(_)), "{err}");
    let err = ca
        .mint_x509_svid(&plain_csr(), &workload_params(), ca.not_after())
        .unwrap_err();
    assert!(matches!(err, CaError::CaExpired { .. }), "{err}");
    let mut params = workload_params();
    params.ttl = Some(Duration::ZERO);
    let err = ca.mint_x509_svid(&plain_csr(), &params, NOW).unwrap_err();
    assert!(matches!(err, CaError::InvalidTtl(_)), "{err}");
    params.ttl = None;
    params.dns_names = vec!["bad name".into()];
    let err = ca.mint_x509_svid(&plain_csr(), &params, NOW).unwrap_err();
    assert!(matches!(err, CaError::InvalidDnsName { .. }), "{err}");
}

#[test]
fn ca_reloads_from_its_certificate_only_with_its_key() {
    let ca = root_ca(KeyType::EcP256);
    let again = X509Ca::from_certificate(
        &td(),
        ca.cert_der().to_vec(),
        vec![],
        vec![],
        ca.key.clone(),
    )
    .unwrap();
    assert_eq!(again.not_after(), ca.not_after());
    let svid = again
        .mint_x509_svid(&plain_csr(), &workload_params(), NOW)
        .unwrap();
    parse(&svid.cert_chain[0])
        .verify_signature(Some(parse(ca.cert_der()).public_key()))
        .unwrap();

    let other_key = Key::generate("x509-CA-B", KeyType::EcP256).unwrap();
    let err = X509Ca::from_certificate(&td(), ca.cert_der().to_vec(), vec![], vec![], other_key)
        .unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
    let other_td = sigil_types::TrustDomain::new("other.org").unwrap();
    let err = X509Ca::from_certificate(
        &other_td,
        ca.cert_der().to_vec(),
        vec![],
        vec![],
        ca.key.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::InvalidCaCertificate(_)), "{err}");
}

#[test]
fn ca_debug_never_shows_the_key() {
    let ca = root_ca(KeyType::EcP256);
    let debug = format!("{ca:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains("serialized_der"), "{debug}");
}

#[test]
fn a_bad_request_is_the_peer_fault_and_an_expired_ca_is_not() {
    let ca = root_ca(KeyType::EcP256);
    let mut refused = vec![
        ca.mint_x509_svid(b"not a CSR", &workload_params(), NOW)
            .unwrap_err(),
    ];
    let foreign = csr_with(
        &client_key(&rcgen::PKCS_ECDSA_P256_SHA256),
        vec![uri("spiffe://other.org/web")],
        "csr",
    );
    refused.push(
        ca.mint_x509_svid(&foreign, &workload_params(), NOW)
            .unwrap_err(),
    );
    let mut params = workload_params();
    params.ttl = Some(Duration::ZERO);
    refused.push(ca.mint_x509_svid(&plain_csr(), &params, NOW).unwrap_err());
    for err in &refused {
        assert!(err.is_peer_fault(), "{err}");
    }
    let expired = ca
        .mint_x509_svid(&plain_csr(), &workload_params(), ca.not_after())
        .unwrap_err();
    assert!(matches!(expired, CaError::CaExpired { .. }), "{expired}");
    assert!(!expired.is_peer_fault(), "{expired}");
    assert!(!CaError::SigningFailed("rcgen".into()).is_peer_fault());
}
