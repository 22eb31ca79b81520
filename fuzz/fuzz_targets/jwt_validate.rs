//! The JWT-SVID validator (`ValidateJWTSVID`, the agent's and the server's checks of tokens
//! from workloads). Two modes:
//!
//! - `Mutate`: edits of a token the test key really signed. Property: a token the validator
//!   accepts has the original's signing input and signature bytes, so it was not altered.
//! - `Forge`: a header, claims and signature of the fuzzer's choosing, optionally signed with
//!   the test key. Property: an accepted token verifies under the test key (checked here with
//!   aws-lc-rs directly) and its claims meet the specification: `exp` after now, `nbf` not
//!   after now, the expected audience among `aud`, `sub` a SPIFFE ID of the trust domain, and
//!   the validator reports exactly those claims.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sigil_ca::{JwtSigner, Key, validate_jwt_svid};
use sigil_types::{Bundle, SpiffeId, TrustDomain};

const NOW: i64 = 1_800_000_000;
const KID: &str = "fuzz-kid";
const AUDIENCE: &str = "spiffe://example.org/audience";

struct Fixture {
    bundle: Bundle,
    token: String,
    key_pair: EcdsaKeyPair,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        let key = Key::from_pkcs8_der("fuzz-jwt", pkcs8.as_ref()).expect("sigil-ca reads it");
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("aws-lc reads it");
        let signer = JwtSigner::new(key, KID, NOW + 86_400).expect("signer");
        let mut bundle = Bundle::new(TrustDomain::new("example.org").expect("valid"));
        bundle.jwt_authorities.push(signer.authority());
        let id: SpiffeId = "spiffe://example.org/workload".parse().expect("valid");
        let svid = signer
            .mint_jwt_svid(&id, &[AUDIENCE.to_owned()], Duration::from_secs(300), NOW)
            .expect("mint");
        Fixture {
            bundle,
            token: svid.token,
            key_pair,
        }
    })
}

#[derive(Debug, Arbitrary)]
enum Input {
    Mutate(Vec<Edit>),
    Forge {
        header: Header,
        claims: Claims,
        /// Sign with the test key, or use `signature` as it is.
        sign: bool,
        signature: Vec<u8>,
    },
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Set { at: u16, byte: u8 },
    Insert { at: u16, byte: u8 },
    Remove { at: u16 },
    Splice { at: u16, len: u8, text: String },
}

#[derive(Debug, Arbitrary)]
struct Header {
    alg: Choice,
    kid: Option<Choice>,
    typ: Option<Choice>,
    extra: Option<(String, String)>,
}

#[derive(Debug, Arbitrary)]
struct Claims {
    sub: Option<Choice>,
    aud: Option<Vec<Choice>>,
    aud_as_string: bool,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    /// Raw JSON instead of the fields above.
    raw: Option<String>,
}

/// A likely value (so the fuzzer reaches past each check) or any string.
#[derive(Debug, Arbitrary)]
enum Choice {
    Likely(u8),
    Any(String),
}

impl Choice {
    fn pick<'a>(&'a self, likely: &[&'a str]) -> &'a str {
        match self {
            Choice::Likely(i) => likely[usize::from(*i) % likely.len()],
            Choice::Any(s) => s,
        }
    }
}

fuzz_target!(|input: Input| {
    let fixture = fixture();
    let token = match &input {
        Input::Mutate(edits) => mutate(&fixture.token, edits),
        Input::Forge {
            header,
            claims,
            sign,
            signature,
        } => forge(fixture, header, claims, *sign, signature),
    };
    let Ok(valid) = validate_jwt_svid(&token, &fixture.bundle, AUDIENCE, NOW) else {
        return;
    };

    let (signed, signature) = split(&token);
    if matches!(input, Input::Mutate(_)) {
        let (original_signed, original_signature) = split(&fixture.token);
        assert_eq!(
            signed, original_signed,
            "an altered signing input was accepted"
        );
        assert_eq!(
            signature, original_signature,
            "an altered signature was accepted"
        );
    }
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        fixture.key_pair.public_key().as_ref(),
    )
    .verify(signed.as_bytes(), &signature)
    .expect("an accepted token verifies under the test key");

    let claims_b64 = signed.split('.').nth(1).expect("three segments");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).expect("base64url"))
            .expect("JSON claims");
    let exp = claims["exp"].as_i64().expect("exp is an integer");
    assert!(exp > NOW, "an expired token was accepted");
    assert_eq!(valid.expires_at, exp);
    if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_i64) {
        assert!(nbf <= NOW, "a token not yet valid was accepted");
    }
    let audience: Vec<&str> = match &claims["aud"] {
        serde_json::Value::String(one) => vec![one.as_str()],
        serde_json::Value::Array(many) => many.iter().filter_map(|a| a.as_str()).collect(),
        other => panic!("aud {other} was accepted"),
    };
    assert!(audience.contains(&AUDIENCE));
    assert_eq!(valid.audience, audience);
    let sub = claims["sub"].as_str().expect("sub is a string");
    assert_eq!(valid.spiffe_id.as_str(), sub);
    assert!(valid.spiffe_id.is_member_of(&fixture.bundle.trust_domain));
    assert_eq!(valid.key_id, KID);
});

/// The signing input and the decoded signature of a compact JWS.
fn split(token: &str) -> (&str, Vec<u8>) {
    let (signed, signature) = token.rsplit_once('.').expect("three segments");
    (
        signed,
        URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64url signature"),
    )
}

fn mutate(token: &str, edits: &[Edit]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for edit in edits {
        let at = |i: u16, len: usize| usize::from(i) % (len + 1);
        match edit {
            Edit::Set { at: i, byte } => {
                if !bytes.is_empty() {
                    let i = usize::from(*i) % bytes.len();
                    bytes[i] = *byte;
                }
            }
            Edit::Insert { at: i, byte } => {
                let i = at(*i, bytes.len());
                bytes.insert(i, *byte);
            }
            Edit::Remove { at: i } => {
                if !bytes.is_empty() {
                    let i = usize::from(*i) % bytes.len();
                    bytes.remove(i);
                }
            }
            Edit::Splice { at: i, len, text } => {
                let start = at(*i, bytes.len());
                let end = (start + usize::from(*len)).min(bytes.len());
                bytes.splice(start..end, text.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn forge(fixture: &Fixture, header: &Header, claims: &Claims, sign: bool, sig: &[u8]) -> String {
    let mut h = serde_json::Map::new();
    h.insert(
        "alg".into(),
        header
            .alg
            .pick(&["ES256", "ES384", "RS256", "none", "HS256"])
            .into(),
    );
    if let Some(kid) = &header.kid {
        h.insert("kid".into(), kid.pick(&[KID, "other"]).into());
    }
    if let Some(typ) = &header.typ {
        h.insert("typ".into(), typ.pick(&["JWT", "JOSE", "jwt"]).into());
    }
    if let Some((name, value)) = &header.extra {
        h.insert(name.clone(), value.clone().into());
    }
    let claims_json = match &claims.raw {
        Some(raw) => raw.clone(),
        None => {
            let mut c = serde_json::Map::new();
            if let Some(sub) = &claims.sub {
                c.insert(
                    "sub".into(),
                    sub.pick(&["spiffe://example.org/workload", "spiffe://other.org/w"])
                        .into(),
                );
            }
            if let Some(aud) = &claims.aud {
                let list: Vec<serde_json::Value> = aud
                    .iter()
                    .map(|a| a.pick(&[AUDIENCE, "other"]).into())
                    .collect();
                let value = match (claims.aud_as_string, list.first()) {
                    (true, Some(first)) => first.clone(),
                    _ => list.into(),
                };
                c.insert("aud".into(), value);
            }
            for (name, value) in [
                ("exp", claims.exp),
                ("nbf", claims.nbf),
                ("iat", claims.iat),
            ] {
                if let Some(v) = value {
                    c.insert(name.into(), v.into());
                }
            }
            serde_json::Value::Object(c).to_string()
        }
    };
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::Value::Object(h).to_string()),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let signature = if sign {
        fixture
            .key_pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .expect("signing")
            .as_ref()
            .to_vec()
    } else {
        sig.to_vec()
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}
