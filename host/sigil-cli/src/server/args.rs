//! Flag values turned into wire messages, with SPIRE's error texts.

use std::io::Read;

use sigil_proto::spire::api::types as wire;
use sigil_types::{SpiffeId, TrustDomain};

use crate::error::CliError;

/// A SPIFFE ID flag value as the wire's `{trust_domain, path}`.
pub(crate) fn spiffe_id(value: &str) -> Result<wire::Spiffeid, CliError> {
    let id: SpiffeId = value
        .parse()
        .map_err(|e| CliError::invalid(format!("{e}")))?;
    Ok((&id).into())
}

/// The same, with SPIRE's `error parsing <what> "<value>": ` prefix (filters).
pub(crate) fn spiffe_id_for(what: &str, value: &str) -> Result<wire::Spiffeid, CliError> {
    spiffe_id(value).map_err(|e| CliError::invalid(format!("error parsing {what} {value:?}: {e}")))
}

/// A trust domain given as a name (`example.org`) or its ID (`spiffe://example.org`).
pub(crate) fn trust_domain(value: &str) -> Result<String, CliError> {
    let name = value.strip_prefix("spiffe://").unwrap_or(value);
    let td = TrustDomain::new(name).map_err(|e| CliError::invalid(e.to_string()))?;
    Ok(td.name().to_owned())
}

/// SPIRE's `util.ParseSelector`: the type is everything before the first `:`.
pub(crate) fn selector(value: &str) -> Result<wire::Selector, CliError> {
    let (selector_type, selector_value) = value.split_once(':').ok_or_else(|| {
        CliError::invalid(format!(
            "selector \"{value}\" must be formatted as type:value"
        ))
    })?;
    Ok(wire::Selector {
        r#type: selector_type.to_owned(),
        value: selector_value.to_owned(),
    })
}

/// Every `-selector` value.
pub(crate) fn selectors(values: &[String]) -> Result<Vec<wire::Selector>, CliError> {
    values.iter().map(|v| selector(v)).collect()
}

/// `-matchSelectorsOn exact|any|superset|subset`.
pub(crate) fn selector_match(mode: &str) -> Result<i32, CliError> {
    use wire::selector_match::MatchBehavior as M;
    Ok(match mode {
        "exact" => M::MatchExact,
        "any" => M::MatchAny,
        "superset" => M::MatchSuperset,
        "subset" => M::MatchSubset,
        other => {
            return Err(CliError::invalid(format!(
                "match behavior {other:?} unknown"
            )));
        }
    } as i32)
}

/// `-matchFederatesWithOn exact|any|superset|subset`.
pub(crate) fn federates_with_match(mode: &str) -> Result<i32, CliError> {
    use wire::federates_with_match::MatchBehavior as M;
    Ok(match mode {
        "exact" => M::MatchExact,
        "any" => M::MatchAny,
        "superset" => M::MatchSuperset,
        "subset" => M::MatchSubset,
        other => {
            return Err(CliError::invalid(format!(
                "match behavior {other:?} unknown"
            )));
        }
    } as i32)
}

/// A non-negative TTL in seconds that fits the wire's int32, or SPIRE's error text.
pub(crate) fn ttl(value: i64, what: &str) -> Result<i32, CliError> {
    if value < 0 {
        return Err(CliError::invalid(format!("a positive {what} is required")));
    }
    i32::try_from(value).map_err(|_| CliError::invalid(format!("{what} is too large")))
}

/// The contents of `path`, or of stdin when `path` is `None` or `-`.
pub(crate) fn read_input(path: Option<&str>) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    match path {
        Some(path) if path != "-" => {
            return std::fs::read(path).map_err(CliError::io(format!("unable to read {path}")));
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut data)
                .map_err(CliError::io("unable to read stdin"))?;
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_at_the_first_colon() {
        let s = selector("k8s:pod-label:app:web").unwrap();
        assert_eq!(
            (s.r#type.as_str(), s.value.as_str()),
            ("k8s", "pod-label:app:web")
        );
        assert_eq!(
            selector("unix").unwrap_err().to_string(),
            "selector \"unix\" must be formatted as type:value"
        );
    }

    #[test]
    fn ids_and_trust_domains() {
        let id = spiffe_id("spiffe://example.org/web").unwrap();
        assert_eq!(
            (id.trust_domain.as_str(), id.path.as_str()),
            ("example.org", "/web")
        );
        assert!(spiffe_id("http://example.org/web").is_err());
        assert_eq!(trust_domain("spiffe://Domain.test").ok(), None);
        assert_eq!(trust_domain("spiffe://domain.test").unwrap(), "domain.test");
        assert_eq!(trust_domain("domain.test").unwrap(), "domain.test");
    }

    #[test]
    fn ttls_and_match_modes() {
        assert_eq!(ttl(60, "x509-SVID TTL").unwrap(), 60);
        assert_eq!(
            ttl(-1, "x509-SVID TTL").unwrap_err().to_string(),
            "a positive x509-SVID TTL is required"
        );
        assert!(ttl(i64::from(i32::MAX) + 1, "TTL").is_err());
        assert_eq!(selector_match("any").unwrap(), 3);
        assert_eq!(
            selector_match("most").unwrap_err().to_string(),
            "match behavior \"most\" unknown"
        );
        assert_eq!(federates_with_match("exact").unwrap(), 0);
    }
}
