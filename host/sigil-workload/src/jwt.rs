//! `ValidateJWTSVID`'s work: pick the bundle of the token's trust domain, validate with
//! sigil-ca, and turn the verified claims into a `google.protobuf.Struct`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use sigil_types::{SpiffeId, UnixTime};

use crate::WorkloadUpdate;
use crate::error::ApiError;

/// Nesting deeper than this in a claims set is refused rather than converted.
const MAX_CLAIMS_DEPTH: usize = 32;

/// Validates `token` for `audience` against the bundle of the trust domain its `sub` names,
/// among the bundles of `update`. Returns the SPIFFE ID and every claim.
pub(crate) fn validate(
    token: &str,
    audience: &str,
    update: &WorkloadUpdate,
    now: UnixTime,
) -> Result<(SpiffeId, Struct), ApiError> {
    let invalid = |reason: String| ApiError::InvalidJwt(reason);
    // The subject picks the bundle; nothing of it is trusted before the signature verifies.
    let unverified = claims_segment(token).and_then(decode_claims)?;
    let subject = unverified
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| invalid("token has no sub claim".into()))?;
    let subject: SpiffeId = subject
        .parse()
        .map_err(|e: sigil_types::SpiffeIdError| invalid(format!("sub claim: {e}")))?;
    let trust_domain = subject.trust_domain();
    let bundle = update
        .bundle_for(&trust_domain)
        .ok_or_else(|| invalid(format!("no bundle for trust domain {trust_domain:?}")))?;
    let validated = sigil_ca::validate_jwt_svid(token, bundle, audience, now)
        .map_err(|e| invalid(e.to_string()))?;
    let claims = to_struct(unverified, 0)?;
    Ok((validated.spiffe_id, claims))
}

fn claims_segment(token: &str) -> Result<&str, ApiError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(claims), Some(_), None) => Ok(claims),
        _ => Err(ApiError::InvalidJwt(
            "a JWS compact token has exactly three segments".into(),
        )),
    }
}

fn decode_claims(segment: &str) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ApiError::InvalidJwt("claims are not unpadded base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::InvalidJwt("claims are not a JSON object".into()))
}

fn to_struct(
    object: serde_json::Map<String, serde_json::Value>,
    depth: usize,
) -> Result<Struct, ApiError> {
    let fields = object
        .into_iter()
        .map(|(name, value)| Ok((name, to_value(value, depth + 1)?)))
        .collect::<Result<_, ApiError>>()?;
    Ok(Struct { fields })
}

fn to_value(value: serde_json::Value, depth: usize) -> Result<Value, ApiError> {
    if depth > MAX_CLAIMS_DEPTH {
        return Err(ApiError::InvalidJwt("claims are nested too deeply".into()));
    }
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        // Protobuf's Struct has only doubles, as JSON numbers in Go's structpb.
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items
                .into_iter()
                .map(|v| to_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        }),
        serde_json::Value::Object(object) => Kind::StructValue(to_struct(object, depth)?),
    };
    Ok(Value { kind: Some(kind) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_a_struct() {
        let object = serde_json::json!({
            "sub": "spiffe://example.org/web",
            "aud": ["a", "b"],
            "exp": 1700000000,
            "nested": {"flag": true, "none": null},
        });
        let serde_json::Value::Object(object) = object else {
            panic!("not an object");
        };
        let s = to_struct(object, 0).unwrap();
        assert_eq!(
            s.fields["sub"].kind,
            Some(Kind::StringValue("spiffe://example.org/web".into()))
        );
        assert_eq!(
            s.fields["exp"].kind,
            Some(Kind::NumberValue(1_700_000_000.0))
        );
        let Some(Kind::ListValue(aud)) = &s.fields["aud"].kind else {
            panic!("aud is not a list");
        };
        assert_eq!(aud.values.len(), 2);
        let Some(Kind::StructValue(nested)) = &s.fields["nested"].kind else {
            panic!("nested is not a struct");
        };
        assert_eq!(nested.fields["flag"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(nested.fields["none"].kind, Some(Kind::NullValue(0)));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut value = serde_json::json!(1);
        for _ in 0..60 {
            value = serde_json::json!({ "a": value });
        }
        let serde_json::Value::Object(object) = value else {
            panic!("not an object");
        };
        assert!(matches!(to_struct(object, 0), Err(ApiError::InvalidJwt(_))));
    }

    #[test]
    fn malformed_tokens_are_invalid_arguments() {
        for token in ["", "a.b", "a.b.c.d", "a.!!!.c", "a.bm90IGpzb24.c"] {
            assert!(
                matches!(
                    claims_segment(token).and_then(decode_claims),
                    Err(ApiError::InvalidJwt(_))
                ),
                "{token:?}"
            );
        }
    }
}
