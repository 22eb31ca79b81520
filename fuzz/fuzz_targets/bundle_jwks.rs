//! SPIFFE bundle documents (JWK sets, from federation peers and `bundle set`) and PEM bundles.
//! Properties: a bundle `from_jwks` accepts is one `validate` accepts, serialises, and parses
//! back from its own serialisation to an equal bundle whose serialisation is the same text
//! (a fixed point); its JWT-only encoding carries exactly its JWT authorities; its PEM form
//! carries exactly its X.509 authorities. The same for `from_x509_pem`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_types::{Bundle, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let td = TrustDomain::new("example.org").expect("a valid trust domain");
    if let Ok(document) = std::str::from_utf8(data)
        && let Ok(bundle) = Bundle::from_jwks(td.clone(), document)
    {
        check(&td, &bundle);
    }
    if let Ok(bundle) = Bundle::from_x509_pem(td.clone(), data) {
        assert!(!bundle.x509_authorities.is_empty());
        check(&td, &bundle);
    }
});

fn check(td: &TrustDomain, bundle: &Bundle) {
    if let Err(e) = bundle.validate() {
        panic!("an accepted bundle does not validate: {e}");
    }
    let written = match bundle.to_jwks() {
        Ok(written) => written,
        Err(e) => panic!("an accepted bundle does not serialise: {e}"),
    };
    let again = match Bundle::from_jwks(td.clone(), &written) {
        Ok(again) => again,
        Err(e) => panic!("a bundle's own JWK set does not parse: {e}\n{written}"),
    };
    assert_eq!(&again, bundle, "JWK set round trip changed the bundle");
    assert_eq!(again.to_jwks().as_deref(), Ok(written.as_str()));

    let jwt_only = bundle.to_jwt_jwks().expect("the JWT authorities serialise");
    let jwt = Bundle::from_jwks(td.clone(), &jwt_only).expect("the JWT-only set parses");
    assert!(jwt.x509_authorities.is_empty());
    assert_eq!(jwt.jwt_authorities, bundle.jwt_authorities);

    if !bundle.x509_authorities.is_empty() {
        let pem = bundle.x509_authorities_pem();
        let from_pem = match Bundle::from_x509_pem(td.clone(), pem.as_bytes()) {
            Ok(b) => b,
            Err(e) => panic!("the bundle's PEM does not parse: {e}"),
        };
        assert_eq!(from_pem.x509_authorities, bundle.x509_authorities);
    }
}
