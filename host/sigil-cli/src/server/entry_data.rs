//! The `-data` file of `entry create` / `entry update`: `{"entries": [ … ]}` with SPIRE's
//! field names (`spiffe_id`, `parent_id`, `selectors: [{type, value}]`, `x509_svid_ttl`,
//! `jwt_svid_ttl`, `federates_with`, `dns_names`, `admin`, `downstream`, `expires_at` /
//! `entry_expiry`, `store_svid`, `hint`, `id` / `entry_id`, and the deprecated `ttl`).
//! SPIFFE IDs may be strings or `{trust_domain, path}` objects.

use serde_json::Value;
use sigil_proto::spire::api::types as wire;

use super::args;
use crate::error::CliError;

/// Parses the document into wire entries; errors name the entry index and field.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<wire::Entry>, CliError> {
    let doc: Value = serde_json::from_slice(data)
        .map_err(|e| CliError::invalid(format!("failed to parse entry data: {e}")))?;
    let entries = doc
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| CliError::invalid("entry data has no \"entries\" list"))?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| entry(e).map_err(|m| CliError::invalid(format!("entry {i}: {m}"))))
        .collect()
}

fn entry(v: &Value) -> Result<wire::Entry, String> {
    let mut e = wire::Entry {
        id: string(v, &["id", "entry_id"])?.unwrap_or_default(),
        spiffe_id: id(v, "spiffe_id")?,
        parent_id: id(v, "parent_id")?,
        admin: boolean(v, "admin")?,
        downstream: boolean(v, "downstream")?,
        store_svid: boolean(v, "store_svid")?,
        hint: string(v, &["hint"])?.unwrap_or_default(),
        expires_at: int(v, &["expires_at", "entry_expiry"])?.unwrap_or(0),
        federates_with: strings(v, "federates_with")?,
        dns_names: strings(v, "dns_names")?,
        ..Default::default()
    };
    let ttl = |names: &[&str], what: &str| -> Result<i32, String> {
        let value = int(v, names)?.unwrap_or(0);
        args::ttl(value, what).map_err(|e| e.to_string())
    };
    e.x509_svid_ttl = ttl(&["x509_svid_ttl"], "x509-SVID TTL")?;
    e.jwt_svid_ttl = ttl(&["jwt_svid_ttl"], "JWT-SVID TTL")?;
    if e.x509_svid_ttl == 0 {
        e.x509_svid_ttl = ttl(&["ttl"], "TTL")?;
    }
    if let Some(list) = v.get("selectors") {
        let list = list.as_array().ok_or("selectors must be a list")?;
        for s in list {
            let field = |name: &str| {
                s.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("selector {name} must be a string"))
            };
            e.selectors.push(wire::Selector {
                r#type: field("type")?,
                value: field("value")?,
            });
        }
    }
    Ok(e)
}

fn id(v: &Value, name: &str) -> Result<Option<wire::Spiffeid>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => args::spiffe_id(s)
            .map(Some)
            .map_err(|e| format!("{name}: {e}")),
        Some(Value::Object(o)) => {
            let part = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(Some(wire::Spiffeid {
                trust_domain: part("trust_domain"),
                path: part("path"),
            }))
        }
        Some(_) => Err(format!("{name} must be a string or an object")),
    }
}

fn string(v: &Value, names: &[&str]) -> Result<Option<String>, String> {
    for name in names {
        match v.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(_) => return Err(format!("{name} must be a string")),
        }
    }
    Ok(None)
}

fn int(v: &Value, names: &[&str]) -> Result<Option<i64>, String> {
    for name in names {
        match v.get(*name) {
            None | Some(Value::Null) => continue,
            // protojson writes 64-bit integers as strings; accept both.
            Some(Value::String(s)) => {
                return s
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} must be an integer"));
            }
            Some(n) => {
                return n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} must be an integer"));
            }
        }
    }
    Ok(None)
}

fn boolean(v: &Value, name: &str) -> Result<bool, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(b) => b
            .as_bool()
            .ok_or_else(|| format!("{name} must be true or false")),
    }
}

fn strings(v: &Value, name: &str) -> Result<Vec<String>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{name} must hold strings"))
            })
            .collect(),
        Some(_) => Err(format!("{name} must be a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spire_entry_files() {
        let doc = br#"{"entries":[
            {"selectors":[{"type":"unix","value":"uid:111"}],
             "spiffe_id":"spiffe://example.org/Blog","parent_id":"spiffe://example.org/spire/agent/myagent1",
             "x509_svid_ttl":200,"jwt_svid_ttl":30,"dns_names":["a.example"],"admin":true,"hint":"h"},
            {"selectors":[{"type":"k8s","value":"ns:a"}],
             "spiffe_id":{"trust_domain":"example.org","path":"/db"},"parent_id":"spiffe://example.org/p",
             "ttl":"300","federates_with":["spiffe://other.test"],"entry_expiry":1552410266}
        ]}"#;
        let entries = parse(doc).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].spiffe_id.as_ref().unwrap().path, "/Blog");
        assert_eq!(
            (entries[0].x509_svid_ttl, entries[0].jwt_svid_ttl),
            (200, 30)
        );
        assert!(entries[0].admin);
        assert_eq!(entries[0].selectors[0].value, "uid:111");
        assert_eq!(entries[1].x509_svid_ttl, 300);
        assert_eq!(entries[1].expires_at, 1_552_410_266);
        assert_eq!(entries[1].federates_with, ["spiffe://other.test"]);
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let err = |doc: &str| parse(doc.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"entries":[{"admin":"yes"}]}"#),
            "entry 0: admin must be true or false"
        );
        assert_eq!(
            err(r#"{"entries":[{},{"x509_svid_ttl":-5}]}"#),
            "entry 1: a positive x509-SVID TTL is required"
        );
        assert_eq!(err("{}"), "entry data has no \"entries\" list");
        assert!(err("not json").starts_with("failed to parse entry data:"));
    }
}
