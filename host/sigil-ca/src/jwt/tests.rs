//! JWT-SVID minting and validation: a round trip per algorithm, and one refusal per rule.

use sigil_types::Bundle;

use super::*;
use crate::test_support::{NOW, id, td};

const EXPIRES: UnixTime = NOW + 86_400;

fn new_signer(key_type: KeyType) -> JwtSigner {
    let key = Key::generate("JWT-Signer-A", key_type).unwrap();
    JwtSigner::new(key, generate_kid().unwrap(), EXPIRES).unwrap()
}

fn bundle_with(signers: &[&JwtSigner]) -> Bundle {
    let mut bundle = Bundle::new(td());
    bundle.jwt_authorities = signers.iter().map(|s| s.authority()).collect();
    bundle
}

fn audience() -> Vec<String> {
    vec!["bank".to_owned(), "shop".to_owned()]
}

fn mint(signer: &JwtSigner) -> String {
    signer
        .mint_jwt_svid(&id("/web"), &audience(), DEFAULT_JWT_SVID_TTL, NOW)
        .unwrap()
        .token
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

/// A token with the given header and claims JSON, signed by `signer` over exactly them.
fn signed_token(signer: &JwtSigner, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header_for(signer: &JwtSigner) -> String {
    format!(
        r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
        signer.algorithm(),
        signer.kid()
    )
}

fn claims(sub: &str, aud: &str, exp: UnixTime) -> String {
    format!(r#"{{"sub":"{sub}","aud":{aud},"exp":{exp},"iat":{NOW}}}"#)
}

#[test]
fn round_trip_for_each_algorithm() {
    for (key_type, alg) in [
        (KeyType::EcP256, "ES256"),
        (KeyType::EcP384, "ES384"),
        (KeyType::Rsa2048, "RS256"),
        (KeyType::Rsa4096, "RS256"),
    ] {
        let signer = new_signer(key_type);
        assert_eq!(signer.algorithm(), alg);
        let svid = signer
            .mint_jwt_svid(&id("/web"), &audience(), DEFAULT_JWT_SVID_TTL, NOW)
            .unwrap();
        assert_eq!(svid.expires_at, NOW + 300);
        assert_eq!(svid.issued_at, NOW);
        let header_b64 = svid.token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
        assert_eq!(header["alg"], alg);
        assert_eq!(header["kid"], signer.kid());
        assert_eq!(header["typ"], "JWT");

        let valid = validate_jwt_svid(&svid.token, &bundle_with(&[&signer]), "shop", NOW).unwrap();
        assert_eq!(valid.spiffe_id, id("/web"));
        assert_eq!(valid.audience, audience());
        assert_eq!(valid.expires_at, NOW + 300);
        assert_eq!(valid.issued_at, Some(NOW));
        assert_eq!(valid.key_id, signer.kid());
    }
}

#[test]
fn expiry_is_capped_at_the_signing_key_expiry() {
    let signer = new_signer(KeyType::EcP256);
    let svid = signer
        .mint_jwt_svid(
            &id("/web"),
            &audience(),
            Duration::from_secs(7 * 86_400),
            NOW,
        )
        .unwrap();
    assert_eq!(svid.expires_at, EXPIRES);
    let err = signer
        .mint_jwt_svid(&id("/web"), &audience(), DEFAULT_JWT_SVID_TTL, EXPIRES)
        .unwrap_err();
    assert!(matches!(err, JwtError::SignerExpired { .. }), "{err}");
}

#[test]
fn minting_needs_an_audience_and_a_ttl() {
    let signer = new_signer(KeyType::EcP256);
    let err = signer
        .mint_jwt_svid(&id("/web"), &[], DEFAULT_JWT_SVID_TTL, NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::EmptyAudience), "{err}");
    let err = signer
        .mint_jwt_svid(&id("/web"), &audience(), Duration::ZERO, NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::InvalidTtl), "{err}");
}

#[test]
fn wrong_kid_is_refused() {
    let signer = new_signer(KeyType::EcP256);
    let mut bundle = bundle_with(&[&signer]);
    bundle.jwt_authorities[0].key_id = "another-kid".to_owned();
    let err = validate_jwt_svid(&mint(&signer), &bundle, "bank", NOW).unwrap_err();
    assert!(
        matches!(&err, JwtError::UnknownKeyId(k) if k == signer.kid()),
        "{err}"
    );

    // The right kid with another key: the signature fails.
    let other = new_signer(KeyType::EcP256);
    let mut bundle = bundle_with(&[&other]);
    bundle.jwt_authorities[0].key_id = signer.kid().to_owned();
    let err = validate_jwt_svid(&mint(&signer), &bundle, "bank", NOW).unwrap_err();
    assert!(matches!(err, JwtError::SignatureInvalid), "{err}");
}

#[test]
fn tampered_payload_is_refused() {
    let signer = new_signer(KeyType::EcP256);
    let token = mint(&signer);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&claims(
        "spiffe://example.org/admin",
        r#"["bank"]"#,
        NOW + 300,
    ));
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let err = validate_jwt_svid(&tampered, &bundle_with(&[&signer]), "bank", NOW).unwrap_err();
    assert!(matches!(err, JwtError::SignatureInvalid), "{err}");

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    let err = validate_jwt_svid(&flipped, &bundle_with(&[&signer]), "bank", NOW).unwrap_err();
    assert!(matches!(err, JwtError::SignatureInvalid), "{err}");
}

#[test]
fn expired_token_is_refused() {
    let signer = new_signer(KeyType::EcP256);
    let token = mint(&signer);
    let bundle = bundle_with(&[&signer]);
    validate_jwt_svid(&token, &bundle, "bank", NOW + 299).unwrap();
    let err = validate_jwt_svid(&token, &bundle, "bank", NOW + 300).unwrap_err();
    assert!(
        matches!(err, JwtError::Expired { expires_at, now } if expires_at == NOW + 300 && now == NOW + 300),
        "{err}"
    );
}

#[test]
fn wrong_audience_is_refused() {
    let signer = new_signer(KeyType::EcP256);
    let err =
        validate_jwt_svid(&mint(&signer), &bundle_with(&[&signer]), "attacker", NOW).unwrap_err();
    assert!(matches!(&err, JwtError::AudienceMismatch { expected } if expected == "attacker"));
    // A single-string `aud` is accepted, as the JWT spec allows.
    let token = signed_token(
        &signer,
        &header_for(&signer),
        &claims("spiffe://example.org/w", r#""bank""#, NOW + 60),
    );
    let valid = validate_jwt_svid(&token, &bundle_with(&[&signer]), "bank", NOW).unwrap();
    assert_eq!(valid.audience, vec!["bank"]);
}

#[test]
fn algorithm_that_does_not_fit_the_key_is_refused() {
    let ec = new_signer(KeyType::EcP256);
    let rsa = new_signer(KeyType::Rsa2048);
    let bundle = bundle_with(&[&ec, &rsa]);
    let body = claims("spiffe://example.org/w", r#"["bank"]"#, NOW + 60);
    for (victim, alg) in [
        (&ec, "ES384"),
        (&ec, "RS256"),
        (&rsa, "ES256"),
        (&ec, "PS256"),
    ] {
        let header = format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, victim.kid());
        let token = signed_token(victim, &header, &body);
        let err = validate_jwt_svid(&token, &bundle, "bank", NOW).unwrap_err();
        assert!(
            matches!(&err, JwtError::AlgorithmMismatch { alg: a, .. } if a == alg),
            "{alg}: {err}"
        );
    }
}

#[test]
fn alg_none_and_hmac_are_refused() {
    let signer = new_signer(KeyType::EcP256);
    let bundle = bundle_with(&[&signer]);
    let body = b64(&claims("spiffe://example.org/w", r#"["bank"]"#, NOW + 60));
    for alg in ["none", "HS256", "EdDSA", "ES512"] {
        let header = b64(&format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, signer.kid()));
        for signature in ["", "c2ln"] {
            let token = format!("{header}.{body}.{signature}");
            let err = validate_jwt_svid(&token, &bundle, "bank", NOW).unwrap_err();
            assert!(
                matches!(&err, JwtError::UnsupportedAlgorithm(a) if a == alg),
                "{err}"
            );
        }
    }
}

#[test]
fn header_rules_are_enforced() {
    let signer = new_signer(KeyType::EcP256);
    let bundle = bundle_with(&[&signer]);
    let body = claims("spiffe://example.org/w", r#"["bank"]"#, NOW + 60);
    let no_kid = signed_token(&signer, r#"{"alg":"ES256"}"#, &body);
    let err = validate_jwt_svid(&no_kid, &bundle, "bank", NOW).unwrap_err();
    assert!(matches!(err, JwtError::MissingKeyId), "{err}");
    let header = format!(
        r#"{{"alg":"ES256","kid":"{}","typ":"at+jwt"}}"#,
        signer.kid()
    );
    let err = validate_jwt_svid(&signed_token(&signer, &header, &body), &bundle, "bank", NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::InvalidType(_)), "{err}");
    let header = format!(r#"{{"alg":"ES256","kid":"{}","typ":"JOSE"}}"#, signer.kid());
    validate_jwt_svid(&signed_token(&signer, &header, &body), &bundle, "bank", NOW).unwrap();
    let header = format!(
        r#"{{"alg":"ES256","kid":"{}","crit":["exp"]}}"#,
        signer.kid()
    );
    let err = validate_jwt_svid(&signed_token(&signer, &header, &body), &bundle, "bank", NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::CriticalHeader), "{err}");
    let header = format!(r#"{{"alg":"ES256","alg":"none","kid":"{}"}}"#, signer.kid());
    let err = validate_jwt_svid(&signed_token(&signer, &header, &body), &bundle, "bank", NOW)
        .unwrap_err();
    assert!(
        matches!(err, JwtError::Malformed(_)),
        "duplicate alg: {err}"
    );
}

#[test]
fn claims_rules_are_enforced() {
    let signer = new_signer(KeyType::EcP256);
    let bundle = bundle_with(&[&signer]);
    let header = header_for(&signer);
    let check = |claims: &str| {
        validate_jwt_svid(
            &signed_token(&signer, &header, claims),
            &bundle,
            "bank",
            NOW,
        )
    };
    let err = check(&claims("spiffe://other.org/w", r#"["bank"]"#, NOW + 60)).unwrap_err();
    assert!(
        matches!(err, JwtError::SubjectNotInTrustDomain { .. }),
        "{err}"
    );
    let err = check(&claims("https://example.org/w", r#"["bank"]"#, NOW + 60)).unwrap_err();
    assert!(matches!(err, JwtError::InvalidSubject(_)), "{err}");
    let err = check(r#"{"sub":"spiffe://example.org/w","aud":["bank"]}"#).unwrap_err();
    assert!(matches!(err, JwtError::MissingClaim("exp")), "{err}");
    let err = check(&format!(
        r#"{{"sub":"spiffe://example.org/w","exp":{}}}"#,
        NOW + 60
    ))
    .unwrap_err();
    assert!(matches!(err, JwtError::MissingClaim("aud")), "{err}");
    let err = check(&format!(r#"{{"aud":"bank","exp":{}}}"#, NOW + 60)).unwrap_err();
    assert!(matches!(err, JwtError::MissingClaim("sub")), "{err}");
    let err = check(&format!(
        r#"{{"sub":"spiffe://example.org/w","aud":"bank","exp":{},"nbf":{}}}"#,
        NOW + 60,
        NOW + 30
    ))
    .unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid { .. }), "{err}");
    let err = check(r#"{"sub":"spiffe://example.org/w","aud":"bank","exp":"soon"}"#).unwrap_err();
    assert!(matches!(err, JwtError::Malformed(_)), "{err}");
}

#[test]
fn malformed_tokens_are_refused() {
    let signer = new_signer(KeyType::EcP256);
    let bundle = bundle_with(&[&signer]);
    let token = mint(&signer);
    let parts: Vec<&str> = token.split('.').collect();
    for bad in [
        String::new(),
        parts[..2].join("."),
        format!("{token}.extra"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        "a".repeat(20_000),
    ] {
        let err = validate_jwt_svid(&bad, &bundle, "bank", NOW).unwrap_err();
        assert!(matches!(err, JwtError::Malformed(_)), "{bad:.40}: {err}");
    }
}

#[test]
fn unusable_authority_keys_are_reported() {
    let signer = new_signer(KeyType::EcP256);
    let mut bundle = bundle_with(&[&signer]);
    bundle.jwt_authorities[0].public_key_der = vec![0x30, 0x00];
    let err = validate_jwt_svid(&mint(&signer), &bundle, "bank", NOW).unwrap_err();
    assert!(matches!(err, JwtError::InvalidAuthorityKey { .. }), "{err}");
}

#[test]
fn kids_are_32_random_alphanumerics() {
    let a = generate_kid().unwrap();
    let b = generate_kid().unwrap();
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
    assert_ne!(a, b);
}

#[test]
fn authority_and_debug() {
    let signer = new_signer(KeyType::EcP384);
    let authority = signer.authority();
    assert_eq!(authority.key_id, signer.kid());
    assert_eq!(authority.expires_at, EXPIRES);
    assert!(!authority.tainted);
    let bundle = bundle_with(&[&signer]);
    bundle.validate().unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn a_missing_audience_is_the_peer_fault_and_an_expired_signer_is_not() {
    let signer = new_signer(KeyType::EcP256);
    let empty = signer
        .mint_jwt_svid(&id("/web"), &[], DEFAULT_JWT_SVID_TTL, NOW)
        .unwrap_err();
    assert!(empty.is_peer_fault(), "{empty}");
    let expired = signer
        .mint_jwt_svid(&id("/web"), &audience(), DEFAULT_JWT_SVID_TTL, EXPIRES)
        .unwrap_err();
    assert!(
        matches!(expired, JwtError::SignerExpired { .. }),
        "{expired}"
    );
    assert!(!expired.is_peer_fault(), "{expired}");
}
