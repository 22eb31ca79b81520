use super::*;

fn err(s: &str) -> SpiffeIdError {
    match s.parse::<SpiffeId>() {
        Ok(id) => panic!("{s:?} parsed as {id}"),
        Err(e) => e,
    }
}

#[test]
fn parses_valid_ids() {
    for s in [
        "spiffe://example.org",
        "spiffe://example.org/ns/default/sa/web",
        "spiffe://a_b-c.d9/Path.With-All_Chars09",
        "spiffe://td/.../a..b/.x",
    ] {
        let id: SpiffeId = s.parse().unwrap();
        assert_eq!(id.as_str(), s);
        assert_eq!(id.to_string(), s);
    }
    let id: SpiffeId = "spiffe://example.org/ns/default".parse().unwrap();
    assert_eq!(id.trust_domain_name(), "example.org");
    assert_eq!(id.path(), "/ns/default");
    assert_eq!(id.trust_domain(), TrustDomain::new("example.org").unwrap());
}

#[test]
fn rejects_what_the_spec_rejects() {
    assert_eq!(err(""), SpiffeIdError::Empty);
    assert_eq!(err("http://example.org/a"), SpiffeIdError::WrongScheme);
    assert_eq!(err("SPIFFE://example.org/a"), SpiffeIdError::WrongScheme);
    assert_eq!(err("spiffe:/example.org"), SpiffeIdError::WrongScheme);
    assert_eq!(err("spiffe://"), SpiffeIdError::MissingTrustDomain);
    assert_eq!(err("spiffe:///path"), SpiffeIdError::MissingTrustDomain);
    assert_eq!(
        err("spiffe://Example.org"),
        SpiffeIdError::BadTrustDomainChar('E')
    );
    assert_eq!(
        err("spiffe://example.org:8080/a"),
        SpiffeIdError::BadTrustDomainChar(':')
    );
    assert_eq!(
        err("spiffe://user@example.org/a"),
        SpiffeIdError::BadTrustDomainChar('@')
    );
    assert_eq!(err("spiffe://example.org/"), SpiffeIdError::TrailingSlash);
    assert_eq!(err("spiffe://example.org/a/"), SpiffeIdError::TrailingSlash);
    assert_eq!(err("spiffe://example.org//a"), SpiffeIdError::EmptySegment);
    assert_eq!(
        err("spiffe://example.org/a//b"),
        SpiffeIdError::EmptySegment
    );
    assert_eq!(err("spiffe://example.org/./a"), SpiffeIdError::DotSegment);
    assert_eq!(err("spiffe://example.org/a/.."), SpiffeIdError::DotSegment);
    assert_eq!(
        err("spiffe://example.org/a?x=1"),
        SpiffeIdError::BadPathChar('?')
    );
    assert_eq!(
        err("spiffe://example.org/a#frag"),
        SpiffeIdError::BadPathChar('#')
    );
    assert_eq!(
        err("spiffe://example.org/a%20b"),
        SpiffeIdError::BadPathChar('%')
    );
    assert_eq!(
        err("spiffe://example.org?x"),
        SpiffeIdError::BadTrustDomainChar('?')
    );
}

#[test]
fn enforces_length_limits() {
    let td = "a".repeat(255);
    assert!(TrustDomain::new(&td).is_ok());
    assert_eq!(
        TrustDomain::new(&"a".repeat(256)).unwrap_err(),
        SpiffeIdError::TrustDomainTooLong
    );
    let base = "spiffe://example.org/";
    let longest = format!("{base}{}", "a".repeat(2048 - base.len()));
    assert_eq!(longest.len(), 2048);
    assert!(longest.parse::<SpiffeId>().is_ok());
    assert_eq!(err(&format!("{longest}a")), SpiffeIdError::TooLong);
}

#[test]
fn builds_from_parts() {
    let td = TrustDomain::new("example.org").unwrap();
    assert_eq!(td.id().as_str(), "spiffe://example.org");
    assert_eq!(td.id().path(), "");
    let id = SpiffeId::new(&td, "/spire/agent/join_token/abc").unwrap();
    assert_eq!(
        id.as_str(),
        "spiffe://example.org/spire/agent/join_token/abc"
    );
    assert!(id.is_member_of(&td));
    assert_eq!(
        SpiffeId::new(&td, "a").unwrap_err(),
        SpiffeIdError::RelativePath
    );
    assert_eq!(
        SpiffeId::new(&td, "/a/").unwrap_err(),
        SpiffeIdError::TrailingSlash
    );
}

#[test]
fn trust_domain_accepts_name_or_id() {
    let a: TrustDomain = "example.org".parse().unwrap();
    let b: TrustDomain = "spiffe://example.org".parse().unwrap();
    assert_eq!(a, b);
    assert!(
        "spiffe://example.org/workload"
            .parse::<TrustDomain>()
            .is_err()
    );
    assert!("".parse::<TrustDomain>().is_err());
    assert!("https://example.org".parse::<TrustDomain>().is_err());
}

#[test]
fn serde_round_trips_and_validates() {
    let id: SpiffeId = "spiffe://example.org/a".parse().unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"spiffe://example.org/a\"");
    assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);
    assert!(serde_json::from_str::<SpiffeId>("\"spiffe://example.org/a/\"").is_err());
}
