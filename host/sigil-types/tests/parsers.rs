//! Property tests for every parser in sigil-types: round trips, and agreement with an
//! independent reading of the spec on arbitrary input.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a panic is a test failure with its message"
)]

use std::sync::OnceLock;

use proptest::prelude::*;
use sigil_types::{
    Bundle, JwtAuthority, RawEntry, RegistrationEntry, Selector, SpiffeId, TrustDomain,
    X509Authority,
};

// === SPIFFE IDs ===

/// The SPIFFE ID spec restated as a second, independent check: split on the scheme, the first
/// '/', then every '/'.
fn spec_allows(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("spiffe://") else {
        return false;
    };
    if s.len() > 2048 {
        return false;
    }
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let td_ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let path_ok = path.is_empty()
        || path.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    td_ok && path_ok
}

fn trust_domain_name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9._-]{1,12}", 0..6).prop_map(|segs| {
        segs.into_iter()
            .filter(|s| s != "." && s != "..")
            .map(|s| format!("/{s}"))
            .collect()
    })
}

/// Strings near the valid space: a valid ID with a random character spliced in.
fn near_miss() -> impl Strategy<Value = String> {
    (
        trust_domain_name(),
        path(),
        any::<prop::sample::Index>(),
        prop::char::any(),
    )
        .prop_map(|(td, path, at, c)| {
            let mut s = format!("spiffe://{td}{path}");
            let i = at.index(s.len() + 1);
            let i = (0..=i).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s.insert(i, c);
            s
        })
}

proptest! {
    #[test]
    fn spiffe_id_round_trips(td in trust_domain_name(), path in path()) {
        let s = format!("spiffe://{td}{path}");
        let id: SpiffeId = s.parse().unwrap();
        prop_assert_eq!(id.as_str(), s.as_str());
        prop_assert_eq!(id.trust_domain_name(), td.as_str());
        prop_assert_eq!(id.path(), path.as_str());
        let rebuilt = SpiffeId::new(&TrustDomain::new(&td).unwrap(), &path).unwrap();
        prop_assert_eq!(rebuilt, id);
    }

    #[test]
    fn spiffe_id_parser_agrees_with_spec_on_near_misses(s in near_miss()) {
        prop_assert_eq!(s.parse::<SpiffeId>().is_ok(), spec_allows(&s), "input {:?}", s);
    }

    #[test]
    fn spiffe_id_parser_agrees_with_spec_on_anything(s in "(spiffe://)?\\PC{0,40}") {
        prop_assert_eq!(s.parse::<SpiffeId>().is_ok(), spec_allows(&s), "input {:?}", s);
    }

    #[test]
    fn trust_domain_round_trips(td in trust_domain_name()) {
        let parsed: TrustDomain = td.parse().unwrap();
        prop_assert_eq!(parsed.name(), td.as_str());
        let from_id: TrustDomain = parsed.id().as_str().parse().unwrap();
        prop_assert_eq!(from_id, parsed);
    }
}

// === Selectors ===

proptest! {
    #[test]
    fn selector_round_trips(t in "[a-z0-9_]{1,12}", v in "[ -~]{1,40}") {
        let s = format!("{t}:{v}");
        let sel: Selector = s.parse().unwrap();
        prop_assert_eq!(sel.selector_type(), t.as_str());
        prop_assert_eq!(sel.value(), v.as_str());
        prop_assert_eq!(sel.to_string(), s);
    }

    #[test]
    fn selector_parse_never_panics_and_splits_at_first_colon(s in "\\PC{0,40}") {
        match s.parse::<Selector>() {
            Ok(sel) => {
                prop_assert!(!sel.selector_type().contains(':'));
                prop_assert_eq!(sel.to_string(), s);
            }
            Err(_) => {
                let valid = s
                    .split_once(':')
                    .is_some_and(|(t, v)| !t.is_empty() && !v.is_empty());
                prop_assert!(!valid, "refused a well-formed selector {:?}", s);
            }
        }
    }
}

#[test]
fn selector_rejects_malformed() {
    for bad in ["", "unix", ":1000", "unix:", "unix:uid\n1000"] {
        assert!(bad.parse::<Selector>().is_err(), "{bad:?} accepted");
    }
    let s: Selector = "k8s:pod-label:app:web".parse().unwrap();
    assert_eq!((s.selector_type(), s.value()), ("k8s", "pod-label:app:web"));
}

// === Registration entries from raw input ===

fn raw_valid() -> RawEntry<'static> {
    RawEntry {
        spiffe_id: "spiffe://example.org/web",
        parent_id: "spiffe://example.org/spire/agent/join_token/t",
        selectors: vec!["unix:uid:1000", "unix:gid:1000"],
        dns_names: vec!["web.example.org", "*.web.example.org"],
        federates_with: vec!["spiffe://other.org"],
        x509_svid_ttl: 3600,
        ..RawEntry::default()
    }
}

#[test]
fn raw_entry_parses_and_canonicalizes() {
    let entry = RegistrationEntry::from_raw(raw_valid()).unwrap();
    assert_eq!(entry.selectors[0].to_string(), "unix:gid:1000");
    assert_eq!(entry.federates_with[0].name(), "other.org");
    assert_eq!(entry.x509_svid_ttl, 3600);
    assert!(!entry.id.as_str().is_empty());
}

type Mutation = Box<dyn Fn(&mut RawEntry<'static>)>;

#[test]
fn raw_entry_errors_name_the_field() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("id", Box::new(|r| r.id = "bad id")),
        (
            "spiffe_id",
            Box::new(|r| r.spiffe_id = "spiffe://example.org/a/"),
        ),
        (
            "parent_id",
            Box::new(|r| r.parent_id = "http://example.org"),
        ),
        ("selectors", Box::new(|r| r.selectors = vec!["nocolon"])),
        ("selectors", Box::new(|r| r.selectors = vec![])),
        ("x509_svid_ttl", Box::new(|r| r.x509_svid_ttl = -1)),
        ("jwt_svid_ttl", Box::new(|r| r.jwt_svid_ttl = -5)),
        (
            "federates_with",
            Box::new(|r| r.federates_with = vec!["Bad.Org"]),
        ),
        (
            "dns_names",
            Box::new(|r| r.dns_names = vec!["-bad.example.org"]),
        ),
        ("dns_names", Box::new(|r| r.dns_names = vec!["a..b"])),
        ("expires_at", Box::new(|r| r.expires_at = -1)),
        ("hint", Box::new(|r| r.hint = "line\nbreak")),
    ];
    for (field, mutate) in cases {
        let mut raw = raw_valid();
        mutate(&mut raw);
        let err = RegistrationEntry::from_raw(raw).unwrap_err();
        assert_eq!(err.field_name(), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn store_svid_requires_one_selector_type() {
    let mut raw = raw_valid();
    raw.store_svid = true;
    raw.selectors = vec!["unix:uid:1", "k8s:ns:default"];
    assert_eq!(
        RegistrationEntry::from_raw(raw).unwrap_err().field_name(),
        "selectors"
    );
}

proptest! {
    #[test]
    fn entry_ids_accept_exactly_the_allowed_alphabet(s in "\\PC{0,300}") {
        let allowed = !s.is_empty()
            && s.len() <= 255
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        prop_assert_eq!(sigil_types::EntryId::new(&s).is_ok(), allowed);
    }
}

// === Bundles: SPIFFE JWKS and PEM ===

struct Keys {
    certs: Vec<Vec<u8>>,
    spkis: Vec<Vec<u8>>,
}

/// CA certificates and public keys of each supported type, generated once per test binary.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let algs: [&'static rcgen::SignatureAlgorithm; 3] = [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_RSA_SHA256,
        ];
        let mut keys = Keys {
            certs: vec![],
            spkis: vec![],
        };
        for alg in algs {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            keys.certs
                .push(params.self_signed(&key).unwrap().der().to_vec());
            keys.spkis
                .push(rcgen::PublicKeyData::subject_public_key_info(&key));
        }
        keys
    })
}

fn bundle_strategy() -> impl Strategy<Value = Bundle> {
    (
        trust_domain_name(),
        prop::collection::vec(0usize..3, 0..3),
        prop::collection::vec((0usize..3, "[A-Za-z0-9]{1,16}"), 0..4),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(td, xs, js, refresh_hint, sequence_number)| {
            let keys = keys();
            let mut bundle = Bundle::new(TrustDomain::new(&td).unwrap());
            for i in xs {
                bundle.x509_authorities.push(X509Authority {
                    der: keys.certs[i].clone(),
                    tainted: false,
                });
            }
            for (i, kid) in js {
                if bundle.jwt_authorities.iter().all(|a| a.key_id != kid) {
                    bundle.jwt_authorities.push(JwtAuthority {
                        key_id: kid,
                        public_key_der: keys.spkis[i].clone(),
                        expires_at: 0,
                        tainted: false,
                    });
                }
            }
            bundle.refresh_hint = refresh_hint;
            bundle.sequence_number = sequence_number;
            bundle
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn jwks_round_trips(bundle in bundle_strategy()) {
        let doc = bundle.to_jwks().unwrap();
        let parsed = Bundle::from_jwks(bundle.trust_domain.clone(), &doc).unwrap();
        prop_assert_eq!(parsed, bundle);
    }

    #[test]
    fn jwks_parser_never_panics(doc in "\\PC{0,200}") {
        let _ = Bundle::from_jwks(TrustDomain::new("example.org").unwrap(), &doc);
    }
}

#[test]
fn jwks_has_the_spiffe_shape() {
    let keys = keys();
    let mut bundle = Bundle::new(TrustDomain::new("example.org").unwrap());
    bundle.x509_authorities.push(X509Authority {
        der: keys.certs[0].clone(),
        tainted: false,
    });
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: "kid-1".into(),
        public_key_der: keys.spkis[2].clone(),
        expires_at: 0,
        tainted: false,
    });
    bundle.refresh_hint = 300;
    bundle.sequence_number = 7;
    let doc: serde_json::Value = serde_json::from_str(&bundle.to_jwks().unwrap()).unwrap();
    assert_eq!(doc["spiffe_sequence"], 7);
    assert_eq!(doc["spiffe_refresh_hint"], 300);
    let x509 = &doc["keys"][0];
    assert_eq!(x509["use"], "x509-svid");
    assert_eq!(x509["kty"], "EC");
    assert_eq!(x509["crv"], "P-256");
    assert_eq!(x509["x5c"].as_array().unwrap().len(), 1);
    assert!(x509.get("kid").is_none());
    let jwt = &doc["keys"][1];
    assert_eq!(jwt["use"], "jwt-svid");
    assert_eq!(jwt["kty"], "RSA");
    assert_eq!(jwt["kid"], "kid-1");
    assert_eq!(jwt["e"], "AQAB");

    // The Workload API's encodings: JWT authorities alone; X.509 authorities' DER joined.
    let jwt_only: serde_json::Value = serde_json::from_str(&bundle.to_jwt_jwks().unwrap()).unwrap();
    let only = jwt_only["keys"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["kid"], "kid-1");
    bundle.x509_authorities.push(X509Authority {
        der: keys.certs[1].clone(),
        tainted: false,
    });
    assert_eq!(
        bundle.x509_authorities_der(),
        [keys.certs[0].clone(), keys.certs[1].clone()].concat()
    );
}

#[test]
fn jwks_refuses_malformed_keys_and_ignores_unknown_use() {
    let td = TrustDomain::new("example.org").unwrap();
    let keys = keys();
    let good = Bundle {
        x509_authorities: vec![X509Authority {
            der: keys.certs[0].clone(),
            tainted: false,
        }],
        jwt_authorities: vec![JwtAuthority {
            key_id: "k".into(),
            public_key_der: keys.spkis[1].clone(),
            expires_at: 0,
            tainted: false,
        }],
        ..Bundle::new(td.clone())
    };
    let doc: serde_json::Value = serde_json::from_str(&good.to_jwks().unwrap()).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = doc.clone();
        f(&mut d);
        Bundle::from_jwks(td.clone(), &d.to_string())
    };
    // A jwt-svid key without kid.
    assert!(
        edit(&|d| {
            d["keys"][1].as_object_mut().unwrap().remove("kid");
        })
        .is_err()
    );
    // Two certificates in x5c.
    assert!(
        edit(&|d| {
            let c = d["keys"][0]["x5c"][0].clone();
            d["keys"][0]["x5c"].as_array_mut().unwrap().push(c);
        })
        .is_err()
    );
    // Key parameters that do not match the certificate.
    assert!(edit(&|d| d["keys"][0]["x"] = d["keys"][1]["x"].clone()).is_err());
    // Wrong coordinate size, unknown curve, unknown key type.
    assert!(edit(&|d| d["keys"][1]["x"] = "AAAA".into()).is_err());
    assert!(edit(&|d| d["keys"][1]["crv"] = "P-521".into()).is_err());
    assert!(edit(&|d| d["keys"][1]["kty"] = "oct".into()).is_err());
    // Unknown use is ignored, as the SPIFFE bundle format requires.
    let ignored = edit(&|d| d["keys"][1]["use"] = "sig".into()).unwrap();
    assert!(ignored.jwt_authorities.is_empty());
    assert_eq!(ignored.x509_authorities.len(), 1);
}

#[test]
fn pem_round_trips_and_refuses_junk() {
    let td = TrustDomain::new("example.org").unwrap();
    let keys = keys();
    let mut bundle = Bundle::new(td.clone());
    for der in &keys.certs {
        bundle.x509_authorities.push(X509Authority {
            der: der.clone(),
            tainted: false,
        });
    }
    let pem = bundle.x509_authorities_pem();
    let parsed = Bundle::from_x509_pem(td.clone(), pem.as_bytes()).unwrap();
    assert_eq!(parsed.x509_authorities, bundle.x509_authorities);
    assert!(Bundle::from_x509_pem(td.clone(), b"").is_err());
    let key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(Bundle::from_x509_pem(td, key_pem.as_bytes()).is_err());
}

#[test]
fn append_and_prune() {
    let td = TrustDomain::new("example.org").unwrap();
    let keys = keys();
    let mut a = Bundle::new(td.clone());
    let mut b = Bundle::new(td.clone());
    b.x509_authorities.push(X509Authority {
        der: keys.certs[0].clone(),
        tainted: false,
    });
    b.jwt_authorities.push(JwtAuthority {
        key_id: "k1".into(),
        public_key_der: keys.spkis[0].clone(),
        expires_at: 100,
        tainted: false,
    });
    assert!(a.append(&b));
    assert_eq!(a.sequence_number, 1);
    assert!(
        !a.append(&b),
        "appending the same authorities again changes nothing"
    );
    assert_eq!(a.sequence_number, 1);
    // rcgen's default validity runs to 4096, so the certificate survives; the JWT key does not.
    assert!(a.prune(101).unwrap());
    assert_eq!(a.sequence_number, 2);
    assert!(a.jwt_authorities.is_empty());
    assert_eq!(a.x509_authorities.len(), 1);
    assert!(!a.prune(101).unwrap());
    // Pruning past the certificate's expiry would empty the bundle: refused, nothing changes.
    assert!(a.prune(i64::MAX).is_err());
    assert_eq!(a.x509_authorities.len(), 1);
}

/// Found by the `bundle_jwks` fuzz target: `from_x509_pem` (and `validate`) accepted a CA
/// certificate whose key a SPIFFE bundle cannot carry (there, an EC key on an unknown curve),
/// and the bundle then failed to serialise as a JWK set. Likewise a `x5c` certificate with
/// bytes after it was accepted by `from_jwks` and refused by `validate`.
#[test]
fn x509_authorities_must_be_servable_as_jwks() {
    let td = TrustDomain::new("example.org").unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ed25519 = params.self_signed(&key).unwrap();
    let error = Bundle::from_x509_pem(td.clone(), ed25519.pem().as_bytes()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unsupported public key algorithm"),
        "{error}"
    );
    let mut bundle = Bundle::new(td.clone());
    bundle.x509_authorities.push(X509Authority {
        der: ed25519.der().to_vec(),
        tainted: false,
    });
    assert!(bundle.validate().is_err());

    let mut good = Bundle::new(td.clone());
    good.x509_authorities.push(X509Authority {
        der: keys().certs[0].clone(),
        tainted: false,
    });
    let document = good.to_jwks().unwrap();
    let x5c = serde_json::from_str::<serde_json::Value>(&document).unwrap()["keys"][0]["x5c"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let padded = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut der = engine.decode(&x5c).unwrap();
        der.push(0);
        engine.encode(der)
    };
    let error = Bundle::from_jwks(td, &document.replace(&x5c, &padded)).unwrap_err();
    assert!(error.to_string().contains("trailing bytes"), "{error}");
}
