//! Malformed DTOs are refused, and the error names the field an operator has to fix.

use sigil_types::{AttestedAgent, Bundle, FederationRelationship, JoinToken, RegistrationEntry};

use super::ConvertError;
use crate::spire::api::types as wire;
use crate::spire::api::types::federation_relationship::BundleEndpointProfile as WireProfile;

fn id(td: &str, path: &str) -> Option<wire::Spiffeid> {
    Some(wire::Spiffeid {
        trust_domain: td.into(),
        path: path.into(),
    })
}

fn selector(t: &str, v: &str) -> wire::Selector {
    wire::Selector {
        r#type: t.into(),
        value: v.into(),
    }
}

fn good_entry() -> wire::Entry {
    wire::Entry {
        spiffe_id: id("example.org", "/web"),
        parent_id: id("example.org", "/spire/agent/join_token/abc"),
        selectors: vec![selector("unix", "uid:1000")],
        ..Default::default()
    }
}

/// A change that breaks one field of [`good_entry`].
type Mutation = Box<dyn FnOnce(&mut wire::Entry)>;

fn entry_error(f: impl FnOnce(&mut wire::Entry)) -> String {
    let mut e = good_entry();
    f(&mut e);
    match RegistrationEntry::try_from(&e) {
        Ok(entry) => panic!("accepted malformed entry: {entry:?}"),
        Err(err) => err.field_name().to_owned(),
    }
}

#[test]
fn good_entry_converts() {
    let entry = RegistrationEntry::try_from(&good_entry()).expect("valid entry");
    assert_eq!(entry.spiffe_id.as_str(), "spiffe://example.org/web");
    assert!(
        !entry.id.as_str().is_empty(),
        "an empty ID gets a random one"
    );
}

#[test]
fn entry_fields_are_named() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("spiffe_id", Box::new(|e| e.spiffe_id = None)),
        ("parent_id", Box::new(|e| e.parent_id = None)),
        (
            "spiffe_id.path",
            Box::new(|e| e.spiffe_id = id("example.org", "web")),
        ),
        (
            "spiffe_id.path",
            Box::new(|e| e.spiffe_id = id("example.org", "/a//b")),
        ),
        (
            "spiffe_id.trust_domain",
            Box::new(|e| e.spiffe_id = id("spiffe://example.org/a", "/web")),
        ),
        (
            "parent_id.trust_domain",
            Box::new(|e| e.parent_id = id("Example.Org", "/x")),
        ),
        ("selectors", Box::new(|e| e.selectors.clear())),
        (
            "selectors",
            Box::new(|e| e.selectors = vec![selector("", "uid:1")]),
        ),
        (
            "selectors",
            Box::new(|e| e.selectors = vec![selector("unix", "")]),
        ),
        ("x509_svid_ttl", Box::new(|e| e.x509_svid_ttl = -1)),
        ("jwt_svid_ttl", Box::new(|e| e.jwt_svid_ttl = -5)),
        ("expires_at", Box::new(|e| e.expires_at = -1)),
        (
            "federates_with",
            Box::new(|e| e.federates_with = vec!["Not A Domain".into()]),
        ),
        (
            "dns_names",
            Box::new(|e| e.dns_names = vec!["bad name".into()]),
        ),
        ("hint", Box::new(|e| e.hint = "a\nb".into())),
        ("id", Box::new(|e| e.id = "no spaces".into())),
    ];
    for (field, mutate) in cases {
        assert_eq!(entry_error(mutate), field);
    }
}

#[test]
fn spiffe_id_needs_leading_slash() {
    let err = sigil_types::SpiffeId::try_from(&wire::Spiffeid {
        trust_domain: "example.org".into(),
        path: "web".into(),
    })
    .expect_err("relative path");
    assert_eq!(err.field_name(), "path");
    // The trust domain's own ID has an empty path.
    let td_id = sigil_types::SpiffeId::try_from(&wire::Spiffeid {
        trust_domain: "example.org".into(),
        path: String::new(),
    })
    .expect("trust domain ID");
    assert_eq!(td_id.as_str(), "spiffe://example.org");
    // SPIRE also takes the trust domain in URI form.
    let uri_form = sigil_types::SpiffeId::try_from(&wire::Spiffeid {
        trust_domain: "spiffe://example.org".into(),
        path: "/web".into(),
    })
    .expect("URI-form trust domain");
    assert_eq!(uri_form.as_str(), "spiffe://example.org/web");
}

#[test]
fn agent_fields_are_named() {
    let agent = wire::Agent {
        id: None,
        ..Default::default()
    };
    let err = AttestedAgent::try_from(&agent).expect_err("no id");
    assert_eq!(err.field_name(), "id");
    let agent = wire::Agent {
        id: id("example.org", "/spire/agent/x509pop/abc"),
        selectors: vec![selector("x509pop", "")],
        ..Default::default()
    };
    let err = AttestedAgent::try_from(&agent).expect_err("empty selector value");
    assert_eq!(err.field_name(), "selectors");
}

#[test]
fn join_token_needs_a_value() {
    let err = JoinToken::try_from(&wire::JoinToken::default()).expect_err("empty token");
    assert_eq!(err.field_name(), "value");
}

#[test]
fn bundle_fields_are_named() {
    let bundle = |f: &dyn Fn(&mut wire::Bundle)| {
        let mut b = wire::Bundle {
            trust_domain: "example.org".into(),
            ..Default::default()
        };
        f(&mut b);
        Bundle::try_from(&b)
            .map(|_| ())
            .map_err(|e| e.field_name().to_owned())
    };
    assert_eq!(bundle(&|_| {}), Ok(()));
    assert_eq!(
        bundle(&|b| b.trust_domain = "spiffe://example.org".into()),
        Ok(())
    );
    assert_eq!(
        bundle(&|b| b.trust_domain = "spiffe://example.org/path".into()),
        Err("trust_domain".into())
    );
    assert_eq!(
        bundle(&|b| b.trust_domain = String::new()),
        Err("trust_domain".into())
    );
    assert_eq!(bundle(&|b| b.refresh_hint = -1), Err("refresh_hint".into()));
    assert_eq!(
        bundle(&|b| b.x509_authorities = vec![wire::X509Certificate {
            asn1: b"not a certificate".to_vec(),
            ..Default::default()
        }]),
        Err("x509_authorities[0].asn1".into())
    );
    assert_eq!(
        bundle(&|b| b.jwt_authorities = vec![wire::JwtKey {
            key_id: "k1".into(),
            public_key: vec![1, 2, 3],
            ..Default::default()
        }]),
        Err("jwt_authorities".into())
    );
}

#[test]
fn federation_relationship_fields_are_named() {
    let rel = |f: &dyn Fn(&mut wire::FederationRelationship)| {
        let mut r = wire::FederationRelationship {
            trust_domain: "other.org".into(),
            bundle_endpoint_url: "https://other.org/bundle".into(),
            bundle_endpoint_profile: Some(WireProfile::HttpsWeb(wire::HttpsWebProfile {})),
            trust_domain_bundle: None,
        };
        f(&mut r);
        FederationRelationship::try_from(&r)
            .map(|_| ())
            .map_err(|e| e.field_name().to_owned())
    };
    assert_eq!(rel(&|_| {}), Ok(()));
    assert_eq!(
        rel(&|r| r.bundle_endpoint_url = "http://other.org/bundle".into()),
        Err("bundle_endpoint_url".into())
    );
    assert_eq!(
        rel(&|r| r.bundle_endpoint_url = "https:///bundle".into()),
        Err("bundle_endpoint_url".into())
    );
    assert_eq!(
        rel(&|r| r.bundle_endpoint_profile = None),
        Err("bundle_endpoint_profile".into())
    );
    assert_eq!(
        rel(&|r| {
            r.bundle_endpoint_profile = Some(WireProfile::HttpsSpiffe(wire::HttpsspiffeProfile {
                endpoint_spiffe_id: "other.org/server".into(),
            }));
        }),
        Err("https_spiffe.endpoint_spiffe_id".into())
    );
    assert_eq!(
        rel(&|r| {
            r.trust_domain_bundle = Some(wire::Bundle {
                trust_domain: "third.org".into(),
                ..Default::default()
            });
        }),
        Err("trust_domain_bundle.trust_domain".into())
    );
    assert_eq!(
        rel(&|r| {
            r.trust_domain_bundle = Some(wire::Bundle {
                trust_domain: "other.org".into(),
                refresh_hint: -3,
                ..Default::default()
            });
        }),
        Err("trust_domain_bundle.refresh_hint".into())
    );
}

#[test]
fn errors_become_invalid_argument_naming_the_field() {
    let err = ConvertError::field("spiffe_id", "is required");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "invalid spiffe_id: is required");
}
