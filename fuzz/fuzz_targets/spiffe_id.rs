//! SPIFFE IDs and trust domains from text. Properties: the parser accepts exactly what an
//! independent reading of the SPIFFE-ID specification (§2) accepts; an accepted ID displays
//! as its input, re-parses to an equal value, and is rebuilt equal from its trust domain and
//! path (and through serde); the same for trust domains.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_types::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = text.parse::<SpiffeId>();
    assert_eq!(
        parsed.is_ok(),
        spec_accepts_id(text),
        "parser and specification disagree on {text:?}: {parsed:?}"
    );
    if let Ok(id) = parsed {
        check_id(text, &id);
    }

    let td = text.parse::<TrustDomain>();
    let expected = if text.contains(":/") {
        spec_accepts_id(text) && spec_split(text).is_some_and(|(_, path)| path.is_empty())
    } else {
        spec_accepts_trust_domain(text)
    };
    assert_eq!(td.is_ok(), expected, "trust domain {text:?}: {td:?}");
    if let Ok(td) = td {
        let again: TrustDomain = td
            .to_string()
            .parse()
            .expect("a displayed trust domain parses");
        assert_eq!(again, td);
        let id = td.id();
        assert!(id.path().is_empty());
        assert_eq!(id.trust_domain(), td);
        assert_eq!(id.to_string().parse::<SpiffeId>().as_ref(), Ok(&id));
    }
});

fn check_id(text: &str, id: &SpiffeId) {
    assert_eq!(id.to_string(), text, "Display is not the input");
    assert_eq!(id.as_str(), text);
    let again: SpiffeId = id
        .to_string()
        .parse()
        .expect("a displayed SPIFFE ID parses");
    assert_eq!(&again, id);

    let td = id.trust_domain();
    assert_eq!(td.name(), id.trust_domain_name());
    assert!(id.is_member_of(&td));
    assert_eq!(TrustDomain::new(td.name()).as_ref(), Ok(&td));
    let rebuilt = SpiffeId::new(&td, id.path()).expect("trust domain + path rebuild the ID");
    assert_eq!(&rebuilt, id);
    let (spec_td, spec_path) = spec_split(text).expect("accepted, so it splits");
    assert_eq!(td.name(), spec_td);
    assert_eq!(id.path(), spec_path);

    let json = serde_json::to_string(id).expect("serialises");
    let back: SpiffeId = serde_json::from_str(&json).expect("its JSON deserialises");
    assert_eq!(&back, id);
}

// === The specification, written independently of sigil-types ===

/// `spiffe://` + trust domain + path, or `None` without the scheme.
fn spec_split(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("spiffe://")?;
    Some(match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    })
}

fn spec_accepts_id(text: &str) -> bool {
    if text.len() > 2048 {
        return false;
    }
    let Some((td, path)) = spec_split(text) else {
        return false;
    };
    spec_accepts_trust_domain(td) && spec_accepts_path(path)
}

fn spec_accepts_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn spec_accepts_path(path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    let Some(segments) = path.strip_prefix('/') else {
        return false;
    };
    segments.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
}
