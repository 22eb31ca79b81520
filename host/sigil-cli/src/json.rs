//! `-output json`: the response message in protobuf's JSON mapping as SPIRE prints it
//! (`protojson` with proto field names and unpopulated fields emitted; 64-bit integers as
//! strings; bytes as base64). Written by hand, in field-number order, because the generated
//! messages carry no serde implementation.

use sigil_proto::spire::api::types as wire;

use crate::output::base64;

/// An ordered JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A number, already formatted.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// Compact text, as protojson's `Marshal` writes it.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Num(n) => out.push_str(n),
            Self::Str(s) => {
                out.push_str(&serde_json::Value::String(s.clone()).to_string());
            }
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("\"{name}\":"));
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

pub(crate) fn s(v: &str) -> Json {
    Json::Str(v.to_owned())
}

pub(crate) fn i32n(v: i32) -> Json {
    Json::Num(v.to_string())
}

/// 64-bit integers are strings in protobuf's JSON mapping.
pub(crate) fn i64s(v: i64) -> Json {
    Json::Str(v.to_string())
}

pub(crate) fn u64s(v: u64) -> Json {
    Json::Str(v.to_string())
}

pub(crate) fn bytes(v: &[u8]) -> Json {
    Json::Str(base64(v))
}

pub(crate) fn strs(v: &[String]) -> Json {
    Json::Arr(v.iter().map(|x| s(x)).collect())
}

pub(crate) fn opt<T>(v: Option<&T>, f: impl Fn(&T) -> Json) -> Json {
    v.map_or(Json::Null, f)
}

pub(crate) fn list<T>(v: &[T], f: impl Fn(&T) -> Json) -> Json {
    Json::Arr(v.iter().map(f).collect())
}

pub(crate) fn count(n: i32) -> Json {
    Json::Obj(vec![("count", i32n(n))])
}

pub(crate) fn spiffe_id(id: &wire::Spiffeid) -> Json {
    Json::Obj(vec![
        ("trust_domain", s(&id.trust_domain)),
        ("path", s(&id.path)),
    ])
}

pub(crate) fn selector(sel: &wire::Selector) -> Json {
    Json::Obj(vec![("type", s(&sel.r#type)), ("value", s(&sel.value))])
}

pub(crate) fn status(st: &wire::Status) -> Json {
    Json::Obj(vec![("code", i32n(st.code)), ("message", s(&st.message))])
}

pub(crate) fn entry(e: &wire::Entry) -> Json {
    let mut fields = vec![
        ("id", s(&e.id)),
        ("spiffe_id", opt(e.spiffe_id.as_ref(), spiffe_id)),
        ("parent_id", opt(e.parent_id.as_ref(), spiffe_id)),
        ("selectors", list(&e.selectors, selector)),
        ("x509_svid_ttl", i32n(e.x509_svid_ttl)),
        ("federates_with", strs(&e.federates_with)),
        ("admin", Json::Bool(e.admin)),
        ("downstream", Json::Bool(e.downstream)),
        ("expires_at", i64s(e.expires_at)),
        ("dns_names", strs(&e.dns_names)),
        ("revision_number", i64s(e.revision_number)),
        ("store_svid", Json::Bool(e.store_svid)),
        ("jwt_svid_ttl", i32n(e.jwt_svid_ttl)),
        ("hint", s(&e.hint)),
        ("created_at", i64s(e.created_at)),
    ];
    // `additional_attributes` is proto3 `optional`: protojson leaves it out when unset,
    // even with EmitUnpopulated.
    if let Some(a) = &e.additional_attributes {
        fields.push((
            "additional_attributes",
            Json::Obj(vec![
                (
                    "disable_x509_svid_prefetch",
                    Json::Bool(a.disable_x509_svid_prefetch),
                ),
                ("jwt_svid_include_jti", Json::Bool(a.jwt_svid_include_jti)),
            ]),
        ));
    }
    Json::Obj(fields)
}

pub(crate) fn agent(a: &wire::Agent) -> Json {
    Json::Obj(vec![
        ("id", opt(a.id.as_ref(), spiffe_id)),
        ("attestation_type", s(&a.attestation_type)),
        ("x509svid_serial_number", s(&a.x509svid_serial_number)),
        ("x509svid_expires_at", i64s(a.x509svid_expires_at)),
        ("selectors", list(&a.selectors, selector)),
        ("banned", Json::Bool(a.banned)),
        ("can_reattest", Json::Bool(a.can_reattest)),
        ("agent_version", s(&a.agent_version)),
    ])
}

pub(crate) fn bundle(b: &wire::Bundle) -> Json {
    Json::Obj(vec![
        ("trust_domain", s(&b.trust_domain)),
        (
            "x509_authorities",
            list(&b.x509_authorities, |c| {
                Json::Obj(vec![
                    ("asn1", bytes(&c.asn1)),
                    ("tainted", Json::Bool(c.tainted)),
                ])
            }),
        ),
        (
            "jwt_authorities",
            list(&b.jwt_authorities, |k| {
                key(&k.public_key, &k.key_id, k.expires_at, k.tainted)
            }),
        ),
        ("refresh_hint", i64s(b.refresh_hint)),
        ("sequence_number", u64s(b.sequence_number)),
        (
            "wit_authorities",
            list(&b.wit_authorities, |k| {
                key(&k.public_key, &k.key_id, k.expires_at, k.tainted)
            }),
        ),
    ])
}

/// A `JWTKey` or a `WITKey`: the two messages have the same fields.
fn key(public_key: &[u8], key_id: &str, expires_at: i64, tainted: bool) -> Json {
    Json::Obj(vec![
        ("public_key", bytes(public_key)),
        ("key_id", s(key_id)),
        ("expires_at", i64s(expires_at)),
        ("tainted", Json::Bool(tainted)),
    ])
}

pub(crate) fn federation_relationship(r: &wire::FederationRelationship) -> Json {
    use wire::federation_relationship::BundleEndpointProfile as P;
    let mut fields = vec![
        ("trust_domain", s(&r.trust_domain)),
        ("bundle_endpoint_url", s(&r.bundle_endpoint_url)),
    ];
    match &r.bundle_endpoint_profile {
        Some(P::HttpsWeb(_)) => fields.push(("https_web", Json::Obj(Vec::new()))),
        Some(P::HttpsSpiffe(p)) => fields.push((
            "https_spiffe",
            Json::Obj(vec![("endpoint_spiffe_id", s(&p.endpoint_spiffe_id))]),
        )),
        None => {}
    }
    fields.push((
        "trust_domain_bundle",
        opt(r.trust_domain_bundle.as_ref(), bundle),
    ));
    Json::Obj(fields)
}

/// `{"results":[{"status":…,"<item>":…}]}` for every Batch* response.
pub(crate) fn results<T>(
    items: &[T],
    item_name: &'static str,
    f: impl Fn(&T) -> (Option<&wire::Status>, Json),
) -> Json {
    Json::Obj(vec![(
        "results",
        list(items, |r| {
            let (st, item) = f(r);
            Json::Obj(vec![("status", opt(st, status)), (item_name, item)])
        }),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_compact_ordered_json_with_escapes() {
        let v = Json::Obj(vec![
            ("z", s("a\"b\n")),
            (
                "a",
                Json::Arr(vec![i32n(1), i64s(2), Json::Null, Json::Bool(false)]),
            ),
        ]);
        assert_eq!(v.render(), r#"{"z":"a\"b\n","a":[1,"2",null,false]}"#);
    }

    #[test]
    fn agent_matches_spire_output() {
        let a = wire::Agent {
            id: Some(wire::Spiffeid {
                trust_domain: "example.org".into(),
                path: "/spire/agent/agent1".into(),
            }),
            can_reattest: true,
            ..Default::default()
        };
        assert_eq!(
            agent(&a).render(),
            r#"{"id":{"trust_domain":"example.org","path":"/spire/agent/agent1"},"attestation_type":"","x509svid_serial_number":"","x509svid_expires_at":"0","selectors":[],"banned":false,"can_reattest":true,"agent_version":""}"#
        );
    }
}
